// One event: its name, date, venue and prices, the seat map kept live while the fan
// looks, and the way in: the queue when the event sells through its waiting room.

import { Code, ConnectError } from "@connectrpc/connect";

import type { Mesh } from "../api";
import { h, page, replace } from "../dom";
import { explain, refusal } from "../errors";
import { money, when } from "../format";
import { RoomState, type Room } from "../gen/ticketdrop/v1/waiting_room_pb";
import type { GetEventResponse } from "../gen/ticketdrop/v1/inventory_pb";
import { sleep } from "../retry";
import { MAX_MAP_SEATS, SeatMap } from "./seatmap";

/** How often the seat map is read again. */
export const SEAT_MAP_REFRESH_MS = 2_000;

export async function getRoom(m: Mesh, eventId: string, signal?: AbortSignal): Promise<Room | undefined> {
  try {
    return (await m.room.getRoom({ eventId }, { signal })).room;
  } catch (error) {
    if (ConnectError.from(error).code === Code.NotFound) return undefined;
    throw error;
  }
}

/** Keeps `map` (and the availability `summary`) in step with inventory until `signal` aborts. */
export async function keepLive(
  m: Mesh,
  eventId: string,
  map: SeatMap | undefined,
  summary: HTMLElement,
  signal: AbortSignal,
): Promise<void> {
  while (!signal.aborted) {
    try {
      await sleep(SEAT_MAP_REFRESH_MS, signal);
      const answer = await m.inventory.getEvent({ eventId, includeSeats: map !== undefined }, { signal });
      map?.update(answer.seats);
      replace(summary, availability(answer));
    } catch {
      // Aborted, or a missed refresh: the next one comes anyway.
    }
  }
}

export function availability(answer: GetEventResponse): string {
  const total = answer.total;
  if (!total) return "";
  return `${total.available} of ${answer.event?.capacity ?? 0} seats available · ${total.held} being bought · ${total.sold} sold`;
}

export async function showEvent(m: Mesh, eventId: string, signal: AbortSignal): Promise<void> {
  let answer: GetEventResponse;
  let room: Room | undefined;
  try {
    answer = await m.inventory.getEvent({ eventId, includeSeats: true }, { signal });
    room = await getRoom(m, eventId, signal);
  } catch (error) {
    page("Event not found", h("p", { role: "alert" }, explain(refusal(error))), h("a", { href: "#/" }, "All events"));
    return;
  }
  const event = answer.event!;
  const live = answer.seats.length <= MAX_MAP_SEATS;
  const map = live ? new SeatMap(answer.seats, event.currency, false) : undefined;
  const summary = h("p", { class: "availability", "aria-live": "polite" }, availability(answer));
  const soldOut = room?.state === RoomState.SOLD_OUT;
  const action = soldOut
    ? h("a", { class: "button", href: `#/sold-out/${encodeURIComponent(eventId)}` }, "Sold out")
    : room
      ? h("a", { class: "button primary", href: `#/room/${encodeURIComponent(eventId)}` }, room.state === RoomState.PRE_QUEUE ? "Join the pre-queue" : "Join the queue")
      : h("a", { class: "button primary", href: `#/buy/${encodeURIComponent(eventId)}` }, "Choose seats");
  page(
    event.name,
    h(
      "section",
      { class: "event-head" },
      h("p", { class: "when" }, when(event.startsAt)),
      h("p", { class: "venue" }, event.venueName),
      event.description ? h("p", {}, event.description) : null,
      h(
        "ul",
        { class: "prices", "aria-label": "Prices" },
        answer.availability.map((a) =>
          h("li", {}, `Section ${a.section} (${a.priceTier}): ${money(a.priceCents, event.currency)} · ${a.available} available`),
        ),
      ),
      summary,
      action,
      h("details", { class: "ids" }, h("summary", {}, "Details"), h("p", {}, `Event id ${event.eventId}`)),
    ),
    map ? h("section", { "aria-label": "Seat map" }, h("h2", {}, "Seats"), map.element) : null,
  );
  await keepLive(m, eventId, map, summary, signal);
}
