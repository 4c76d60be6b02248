// The admitted fan's purchase: the time left on the admission, seats chosen on the map
// or "best available", a test card, then the purchase followed step by step
// (WatchPurchase) to its end — the tickets with their QR codes and the confirmation's
// delivery, or the refusal in words with what to do next.

import { Code } from "@connectrpc/connect";
import QRCode from "qrcode";

import type { Mesh } from "../api";
import { h, page, replace } from "../dom";
import { explain, refusal, type Refusal } from "../errors";
import { clock, money, when } from "../format";
import { PurchaseEventKind, type PurchaseEvent, type PurchaseResponse } from "../gen/ticketdrop/v1/coordinator_pb";
import { Participant, Protocol, type Ticket } from "../gen/ticketdrop/v1/common_pb";
import type { Event, Seat } from "../gen/ticketdrop/v1/inventory_pb";
import { Channel } from "../gen/ticketdrop/v1/notifier_pb";
import { delay, sleep, type Backoff } from "../retry";
import { remembered, session } from "../session";
import { availability, getRoom, keepLive } from "./event";
import { admission } from "./room";
import { MAX_MAP_SEATS, MAX_SEATS, SeatMap } from "./seatmap";
import { needsSignIn } from "./signin";

/** The test cards of the payments service (payments.proto), as a fan picks them. */
export const CARDS = [
  { token: "tok_visa", label: "Visa ending 4242 — approves" },
  { token: "tok_declined", label: "Card that is declined" },
  { token: "tok_insufficient_funds", label: "Card without enough funds" },
  { token: "tok_slow", label: "Card whose bank answers slowly" },
];

const PROTOCOLS: [Protocol, string][] = [
  [Protocol.SAGA, "Saga (steps with compensations)"],
  [Protocol.TWO_PHASE_COMMIT, "Two-phase commit"],
  [Protocol.LEASE, "Lease locks with fencing tokens"],
];

/** A purchase sent, remembered so that a refresh follows it instead of buying again. */
interface PendingPurchase {
  key: string;
  seats: string[];
}
const pending = (eventId: string) => remembered<PendingPurchase>("purchase", eventId);

/** Waiting for the purchase to be logged before watching it: 40 tries, 100 ms doubling to 1 s. */
const WATCH_BEGIN: Backoff = { attempts: 40, baseMs: 100, maxMs: 1_000 };

/** What a step of the protocol means to a fan. */
const STEP_WORDS: Record<string, string> = {
  hold_seats: "Holding your seats",
  prepare: "Reserving",
  prepare_sale: "Reserving your seats",
  create_order: "Creating your order",
  prepare_order: "Preparing your order",
  authorize: "Authorizing your card",
  authorize_payment: "Authorizing your card",
  confirm_seats: "Confirming your seats",
  capture: "Charging your card",
  capture_payment: "Charging your card",
  confirm_order: "Issuing your tickets",
  commit: "Confirming",
  acquire_leases: "Locking your seats",
  sell_seats: "Selling you the seats",
  claim_admission: "Checking your turn",
  release_admission: "Handing your turn back to the queue",
};

const PARTICIPANT_WORDS: Record<number, string> = {
  [Participant.INVENTORY]: "seats",
  [Participant.ORDERS]: "order",
  [Participant.PAYMENTS]: "payment",
  [Participant.LOCKS]: "locks",
  [Participant.WAITING_ROOM]: "queue",
  [Participant.COORDINATOR]: "log",
};

export async function showBuy(m: Mesh, eventId: string, signal: AbortSignal): Promise<void> {
  const fan = session.current();
  let answer;
  try {
    answer = await m.inventory.getEvent({ eventId, includeSeats: true }, { signal });
  } catch (error) {
    page("Event not found", h("p", { role: "alert" }, explain(refusal(error))));
    return;
  }
  const event = answer.event!;
  if (!fan) {
    page(`Tickets for ${event.name}`, needsSignIn(m.site, "buy tickets"));
    return;
  }
  const room = await getRoom(m, eventId, signal).catch(() => undefined);
  const turn = admission(eventId).get();
  const underWay = pending(eventId).get();
  if (room && !turn && !underWay) {
    location.hash = `#/room/${encodeURIComponent(eventId)}`;
    return;
  }

  const main = page(`Tickets for ${event.name}`);
  const head = h("p", { class: "when" }, `${when(event.startsAt)} · ${event.venueName}`);
  main.append(head);
  if (underWay) {
    const progress = h("section", { class: "card", "aria-label": "Your purchase" });
    main.append(progress);
    await follow(m, event, underWay, progress, signal, null);
    return;
  }

  const timeLeft = h("p", { id: "time-left", class: "countdown", role: "timer", "aria-live": "off" });
  let timer: number | undefined;
  if (turn) {
    const tick = () => {
      const left = (turn.expiresAtMs - Date.now()) / 1000;
      timeLeft.textContent = left > 0 ? `It is your turn: ${clock(left)} left to buy.` : "Your turn has run out.";
      if (left <= 0) clearInterval(timer);
    };
    tick();
    timer = window.setInterval(tick, 1000);
    signal.addEventListener("abort", () => clearInterval(timer));
  }

  const chosenText = h("p", { id: "chosen", "aria-live": "polite" });
  const mapped = answer.seats.length <= MAX_MAP_SEATS;
  const updateChosen = () => {
    const seats = map?.seatsChosen() ?? [];
    chosenText.textContent = seats.length
      ? `Chosen: ${seats.map((s) => `${s.section}-${s.row}-${s.number}`).join(", ")} · ${money(
          seats.reduce((sum, s) => sum + s.priceCents, 0n),
          event.currency,
        )}`
      : "No seats chosen: the best available seats will be picked for you.";
  };
  const map = mapped ? new SeatMap(answer.seats, event.currency, true, updateChosen) : undefined;
  updateChosen();
  const summary = h("p", { class: "availability", "aria-live": "polite" }, availability(answer));

  const quantity = h(
    "select",
    { id: "quantity", name: "quantity" },
    Array.from({ length: MAX_SEATS }, (_, i) => h("option", { value: String(i + 1) }, String(i + 1))),
  );
  const card = h("fieldset", { class: "cards" }, h("legend", {}, "Pay with (test cards)"),
    CARDS.map((c, i) =>
      h("label", {}, h("input", { type: "radio", name: "card", value: c.token, checked: i === 0 }), ` ${c.label}`),
    ),
  );
  const email = h("input", { id: "email", type: "email", name: "email", autocomplete: "email", placeholder: "you@example.com" });
  const protocol = h(
    "select",
    { id: "protocol", name: "protocol" },
    PROTOCOLS.map(([value, label]) => h("option", { value: String(value) }, label)),
  );
  const problem = h("p", { class: "error", role: "alert" });
  const pay = h("button", { type: "submit", class: "primary", id: "pay" }, "Pay");
  const form = h(
    "form",
    { class: "card buy", "aria-label": "Your purchase" },
    timeLeft,
    h("h2", {}, "1. Your seats"),
    map ? h("p", { class: "muted" }, "Pick seats on the map, or leave it and get the best available.") : null,
    map?.element,
    summary,
    chosenText,
    h("label", { for: "quantity" }, "Best available seats, if you pick none: "),
    quantity,
    h("h2", {}, "2. Payment"),
    card,
    h("label", { for: "email" }, "Email for your tickets (optional) "),
    email,
    h("details", {}, h("summary", {}, "How your purchase runs"), h("label", { for: "protocol" }, "Transaction protocol "), protocol),
    problem,
    pay,
  );
  main.append(form);
  void keepLive(m, eventId, map, summary, signal);

  form.addEventListener("submit", (submit) => {
    submit.preventDefault();
    const seats = map?.seatsChosen() ?? [];
    const purchase: PendingPurchase = {
      key: `web-${fan.userId}-${crypto.randomUUID()}`,
      seats: seats.map((s) => s.seatId),
    };
    pending(eventId).set(purchase);
    clearInterval(timer);
    const progress = h("section", { class: "card", "aria-label": "Your purchase" });
    form.replaceWith(progress);
    const request = {
      userId: fan.userId,
      eventId,
      seatIds: purchase.seats,
      quantity: purchase.seats.length ? 0 : Number(quantity.value),
      cardToken: (form.querySelector("input[name=card]:checked") as HTMLInputElement).value,
      idempotencyKey: purchase.key,
      protocol: Number(protocol.value) as Protocol,
      admissionToken: turn?.token ?? "",
      contact: email.value ? { email: email.value.trim(), phone: "" } : undefined,
    };
    const bought = m.coordinator((c) => c.purchase(request));
    void follow(m, event, purchase, progress, signal, bought);
  });
}

/**
 * Shows the purchase's steps as WatchPurchase streams them, and its end: `bought` is the
 * Purchase call when this page sent it (a refreshed page has only the stream).
 */
async function follow(
  m: Mesh,
  event: Event,
  purchase: PendingPurchase,
  into: HTMLElement,
  signal: AbortSignal,
  bought: Promise<PurchaseResponse> | null,
): Promise<void> {
  const steps = h("ol", { class: "steps", "aria-label": "Steps of your purchase" });
  const status = h("p", { id: "purchase-status", class: "position", "aria-live": "polite" }, "Sending your purchase…");
  const tickets = h("div", { class: "tickets" });
  const delivery = h("ul", { id: "delivery", class: "delivery", "aria-label": "Confirmation" });
  const next = h("p", { class: "next" });
  replace(into, status, steps, tickets, delivery, next);
  const eventId = event.eventId;

  let outcome: "bought" | "refused" | undefined;
  const refused = (r: Refusal) => {
    if (outcome) return;
    outcome = "refused";
    pending(eventId).set(undefined);
    admission(eventId).set(undefined);
    status.textContent = explain(r);
    status.setAttribute("role", "alert");
    into.dataset.outcome = r.reason === "SOLD_OUT" ? "sold-out" : "refused";
    into.dataset.reason = r.reason;
    replace(
      next,
      r.reason === "SOLD_OUT"
        ? h("a", { class: "button", href: "#/" }, "See other events")
        : h(
            "button",
            {
              type: "button",
              class: "primary",
              onclick: async () => {
                // The turn is spent: a new one is at the back of the queue.
                await m.room.leave({ eventId, userId: session.current()?.userId ?? "" }).catch(() => undefined);
                location.hash = `#/room/${encodeURIComponent(eventId)}`;
              },
            },
            "Join the queue again",
          ),
    );
  };
  const succeeded = async (bought: { tickets: Ticket[]; amountCents: bigint; currency: string }) => {
    if (outcome) return;
    outcome = "bought";
    pending(eventId).set(undefined);
    admission(eventId).set(undefined);
    into.dataset.outcome = "tickets";
    const count = bought.tickets.length;
    status.textContent = `You have ${count} ticket${count === 1 ? "" : "s"}: ${money(bought.amountCents, bought.currency)} charged.`;
    await showTickets(m, event, bought.tickets, tickets);
  };

  if (bought) {
    bought.then(succeeded, (error: unknown) => {
      const r = refusal(error);
      // An unknown outcome is followed on the stream; a certain refusal ends here.
      if (r.reason !== "OUTCOME_UNKNOWN" && r.code !== Code.Unavailable && r.code !== Code.DeadlineExceeded) refused(r);
      else status.textContent = explain(r);
    });
  }

  // The purchase's own stream: each step, the end, then each confirmation attempt.
  let after = 0n;
  for (let attempt = 1; !signal.aborted && attempt <= WATCH_BEGIN.attempts; attempt++) {
    try {
      const stream = m.currentCoordinator().watchPurchase({ idempotencyKey: purchase.key, afterSequence: after }, { signal });
      for await (const { event: e } of stream) {
        if (!e) continue;
        after = e.sequence;
        attempt = 1;
        showEvent(e, steps, delivery);
        if (e.kind === PurchaseEventKind.COMMITTED && !bought) {
          // A refreshed page: the tickets come from the order.
          const order = await m.orders.getOrder({ idempotencyKey: purchase.key }).catch(() => undefined);
          if (order?.order) await succeeded({ ...order.order, amountCents: order.order.totalCents });
        }
        if (e.kind === PurchaseEventKind.ABORTED && !bought) {
          refused({ code: Code.Aborted, reason: "", metadata: {}, message: `Your purchase did not go through: ${e.error}` });
        }
      }
      break;
    } catch (error) {
      if (signal.aborted) return;
      const r = refusal(error);
      if (r.code !== Code.NotFound && attempt > 5 && outcome) break;
      await sleep(delay(WATCH_BEGIN, attempt), signal).catch(() => undefined);
    }
  }
  if (bought) await bought.catch(() => undefined);
  if (outcome === "bought") delivery.dataset.settled = "true";
}

/** One line per step, and one per confirmation attempt. */
function showEvent(e: PurchaseEvent, steps: HTMLElement, delivery: HTMLElement): void {
  switch (e.kind) {
    case PurchaseEventKind.STEP: {
      const step = e.step!;
      const words = STEP_WORDS[step.operation] ?? step.operation.replaceAll("_", " ");
      const done = step.error ? `did not work: ${step.error}` : "done";
      steps.append(
        h(
          "li",
          { class: step.compensation ? "undo" : "step" },
          `${step.compensation ? "Undoing: " : ""}${words} (${PARTICIPANT_WORDS[step.participant] ?? "mesh"}) — ${done}`,
        ),
      );
      break;
    }
    case PurchaseEventKind.COMMITTED:
      steps.append(h("li", { class: "committed" }, "Purchase confirmed"));
      break;
    case PurchaseEventKind.ABORTED:
      steps.append(h("li", { class: "aborted" }, "Purchase undone: nothing sold, nothing charged"));
      break;
    case PurchaseEventKind.CONFIRMATION_ATTEMPT: {
      const d = e.delivery!;
      const channel = d.channel === Channel.EMAIL ? "Email" : d.channel === Channel.SMS ? "Text message" : "Webhook";
      delivery.append(
        h(
          "li",
          { "data-delivered": String(d.delivered) },
          d.delivered ? `${channel} with your tickets: sent` : `${channel}: not sent yet (${d.error}); trying again`,
        ),
      );
      break;
    }
    case PurchaseEventKind.CONFIRMATIONS_SETTLED:
      if (e.delivered + e.deadLettered === 0) delivery.append(h("li", {}, "No confirmation asked for: your tickets are here."));
      break;
  }
}

/** Each ticket: its seat as the fan reads it, its QR code, and whether it verifies. */
async function showTickets(m: Mesh, event: Event, tickets: Ticket[], into: HTMLElement): Promise<void> {
  const seats = new Map<string, Seat>(
    (await m.inventory.getEvent({ eventId: event.eventId, includeSeats: true }).catch(() => ({ seats: [] as Seat[] }))).seats.map(
      (s) => [s.seatId, s],
    ),
  );
  for (const ticket of tickets) {
    const seat = seats.get(ticket.seatId);
    const label = seat ? `Section ${seat.section}, row ${seat.row}, seat ${seat.number}` : `Seat ${ticket.seatId}`;
    const verified = h("p", { class: "verified", "data-ticket": ticket.ticketId }, "Checking the ticket…");
    const qr = await QRCode.toDataURL(ticket.token, { errorCorrectionLevel: "M", margin: 1, width: 220 });
    into.append(
      h(
        "article",
        { class: "ticket", "aria-label": `Ticket: ${label}` },
        h("h2", {}, event.name),
        h("p", {}, `${when(event.startsAt)} · ${event.venueName}`),
        h("p", { class: "seat-label" }, label),
        h("img", { src: qr, alt: `QR code of the ticket for ${label}`, width: 220, height: 220 }),
        verified,
        h("details", { class: "ids" }, h("summary", {}, "Details"),
          h("p", {}, `Ticket ${ticket.ticketId} · order ${ticket.orderId} · seat ${ticket.seatId}`),
          h("code", { class: "token" }, ticket.token)),
      ),
    );
    m.orders
      .verifyTicket({ token: ticket.token })
      .then((v) => {
        verified.textContent = v.valid ? "Valid ticket ✓" : "This ticket does not verify";
        verified.dataset.valid = String(v.valid);
      })
      .catch(() => (verified.textContent = ""));
  }
  // Every ticket is on the page (each one's check may still be under way).
  into.dataset.tickets = String(tickets.length);
}
