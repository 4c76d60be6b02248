// The waiting room: join (again after a refresh: the same place), then follow the Watch
// stream — the place, the people ahead, the wait estimated from the room's measured
// admission rate, a progress bar — until it ends: admitted (to the purchase), sold out or
// expired. Before the sale opens the fan waits in the pre-queue with a countdown; at the
// opening everyone in it gets a random place, ahead of those who come later.

import { Code, ConnectError } from "@connectrpc/connect";

import type { Mesh } from "../api";
import { h, page } from "../dom";
import { explain, refusal } from "../errors";
import { clock, millis, seconds, wait, when } from "../format";
import { FanState, type Place } from "../gen/ticketdrop/v1/waiting_room_pb";
import { delay, sleep, STREAM_RECONNECT } from "../retry";
import { remembered, session } from "../session";
import { needsSignIn } from "./signin";

/** What an admitted fan buys with, remembered across a refresh. */
export interface StoredAdmission {
  token: string;
  admissionId: string;
  expiresAtMs: number;
  admissionNumber: number;
}

export const admission = (eventId: string) => remembered<StoredAdmission>("admission", eventId);
/** The furthest-back place the fan had: where the progress bar starts. */
const firstPosition = (eventId: string) => remembered<number>("first-position", eventId);

export async function showRoom(m: Mesh, eventId: string, signal: AbortSignal): Promise<void> {
  const fan = session.current();
  const eventName = await m.inventory
    .getEvent({ eventId }, { signal })
    .then((e) => e.event?.name ?? eventId)
    .catch(() => eventId);
  if (!fan) {
    page(`Queue for ${eventName}`, needsSignIn(m.site, "join the queue"));
    return;
  }
  const status = h("p", { id: "position", class: "position", "aria-live": "polite", "aria-atomic": "true" }, "Joining the queue…");
  const detail = h("p", { id: "wait", class: "muted" });
  const bar = h("progress", { id: "progress", max: 100, value: 0, "aria-label": "Progress through the queue" });
  const countdown = h("p", { id: "countdown", class: "countdown", hidden: true });
  const problem = h("p", { class: "error", role: "alert" });
  const leave = h("button", { type: "button", class: "link" }, "Leave the queue");
  page(
    `Queue for ${eventName}`,
    h(
      "section",
      { class: "card room", "data-event": eventId },
      status,
      countdown,
      bar,
      detail,
      h(
        "p",
        { class: "muted small" },
        "Keep this page open: it updates by itself. Reloading it or opening it in another tab keeps your place.",
      ),
      problem,
      leave,
    ),
  );
  leave.addEventListener("click", async () => {
    await m.room.leave({ eventId, userId: fan.userId }).catch(() => undefined);
    firstPosition(eventId).set(undefined);
    location.hash = `#/event/${encodeURIComponent(eventId)}`;
  });

  let timer: number | undefined;
  signal.addEventListener("abort", () => clearInterval(timer));
  const showPlace = (place: Place) => {
    clearInterval(timer);
    if (place.state === FanState.PRE_QUEUE) {
      const opensAt = millis(place.opensAt);
      status.textContent = `You are in the pre-queue. The sale opens ${when(place.opensAt)}.`;
      detail.textContent =
        "Everyone who is here before the opening gets a place in line at random when it opens: arriving earlier gives no advantage.";
      countdown.hidden = false;
      const tick = () => (countdown.textContent = `Opens in ${clock((opensAt - Date.now()) / 1000)}`);
      tick();
      timer = window.setInterval(tick, 1000);
      bar.removeAttribute("value");
      return;
    }
    countdown.hidden = true;
    const position = Number(place.position);
    const first = Math.max(position, firstPosition(eventId).get() ?? 0);
    firstPosition(eventId).set(first);
    status.textContent = `You are number ${position} in line.`;
    const ahead = position - 1;
    const estimate = place.estimatedWait ? `Estimated wait: ${wait(seconds(place.estimatedWait))}.` : "Estimating your wait…";
    detail.textContent = `${ahead === 0 ? "Nobody is" : ahead === 1 ? "1 person is" : `${ahead} people are`} ahead of you. ${estimate}`;
    bar.value = first > 0 ? Math.round((100 * (first - position)) / first) : 0;
    bar.setAttribute("aria-valuetext", `number ${position} in line`);
  };

  for (let attempt = 1; !signal.aborted; attempt++) {
    try {
      const joined = await m.room.join({ eventId, userId: fan.userId }, { signal });
      if (joined.place) showPlace(joined.place);
      if (joined.place?.state === FanState.SOLD_OUT) {
        location.hash = `#/sold-out/${encodeURIComponent(eventId)}`;
        return;
      }
      for await (const message of m.room.watch({ eventId, userId: fan.userId }, { signal })) {
        attempt = 1;
        problem.textContent = "";
        const update = message.update;
        switch (update.case) {
          case "waiting":
            showPlace(update.value);
            break;
          case "admitted":
            admission(eventId).set({
              token: update.value.token,
              admissionId: update.value.admissionId,
              expiresAtMs: millis(update.value.expiresAt),
              admissionNumber: Number(update.value.admissionNumber),
            });
            firstPosition(eventId).set(undefined);
            location.hash = `#/buy/${encodeURIComponent(eventId)}`;
            return;
          case "soldOut":
            location.hash = `#/sold-out/${encodeURIComponent(eventId)}`;
            return;
          case "expired":
            location.hash = `#/expired/${encodeURIComponent(eventId)}`;
            return;
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      const r = refusal(error);
      if (r.code === Code.NotFound && /waiting room/.test(r.message)) {
        status.textContent = "This event does not sell through a queue.";
        return;
      }
      if (attempt >= STREAM_RECONNECT.attempts) {
        problem.textContent = `${explain(r)} `;
        problem.append(
          h("button", { type: "button", onclick: () => void showRoom(m, eventId, signal) }, "Try again"),
        );
        return;
      }
      if (ConnectError.from(error).code !== Code.Canceled) {
        problem.textContent = "Reconnecting… your place is kept.";
      }
      await sleep(delay(STREAM_RECONNECT, attempt), signal).catch(() => undefined);
    }
  }
}
