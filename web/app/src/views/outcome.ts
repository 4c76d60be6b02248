// The two ends of a turn that bring no tickets, each with what the fan can do next.

import type { Mesh } from "../api";
import { h, page } from "../dom";
import { remembered } from "../session";

async function eventName(m: Mesh, eventId: string): Promise<string> {
  return m.inventory
    .getEvent({ eventId })
    .then((e) => e.event?.name ?? eventId)
    .catch(() => eventId);
}

export async function showSoldOut(m: Mesh, eventId: string): Promise<void> {
  remembered("admission", eventId).set(undefined);
  const name = await eventName(m, eventId);
  page(
    `${name} is sold out`,
    h(
      "section",
      { class: "card outcome", "data-outcome": "sold-out" },
      h("p", { role: "status" }, "Every seat is sold: none is left or held by a purchase that could still give it back."),
      h("h2", {}, "What you can do"),
      h(
        "ul",
        {},
        h("li", {}, h("a", { href: "#/" }, "Find another event"), " — new dates are added as they are announced."),
        h("li", {}, h("a", { href: `#/event/${encodeURIComponent(eventId)}` }, "Look at the seat map"), " to see the hall as it sold."),
      ),
    ),
  );
}

export async function showExpired(m: Mesh, eventId: string): Promise<void> {
  remembered("admission", eventId).set(undefined);
  const name = await eventName(m, eventId);
  const rejoin = h("button", { type: "button", class: "primary" }, "Join the queue again");
  rejoin.addEventListener("click", async () => {
    // A new turn is at the back of the queue: the old place is given up first.
    const userId = JSON.parse(localStorage.getItem("ticketdrop.session") ?? "{}").userId ?? "";
    await m.room.leave({ eventId, userId }).catch(() => undefined);
    location.hash = `#/room/${encodeURIComponent(eventId)}`;
  });
  page(
    `Your turn for ${name} has ended`,
    h(
      "section",
      { class: "card outcome", "data-outcome": "expired" },
      h("p", { role: "status" }, "Your turn to buy ran out before a purchase used it, so it went to the next fan in line."),
      h("h2", {}, "What you can do"),
      h("p", {}, rejoin, " You go to the back of the line."),
      h("p", {}, h("a", { href: "#/" }, "Or find another event")),
    ),
  );
}
