// The seat map: one button per seat, by section and row, coloured by its committed state
// (available, held by a purchase under way, sold) and kept live by `update`. In choosing
// mode a fan picks available seats with the mouse or the keyboard (Tab to a seat, Space
// or Enter to pick it; the arrow keys move along a row and between rows).

import { h } from "../dom";
import { money, seatLabel } from "../format";
import { SeatStatus, type Seat } from "../gen/ticketdrop/v1/inventory_pb";

/** Events larger than this show sections and "best available" only. */
export const MAX_MAP_SEATS = 2_000;
/** Most seats one purchase may name (PurchaseRequest.seat_ids). */
export const MAX_SEATS = 10;

const STATE: Record<number, string> = {
  [SeatStatus.AVAILABLE]: "available",
  [SeatStatus.HELD]: "held",
  [SeatStatus.SOLD]: "sold",
};

export class SeatMap {
  readonly element: HTMLElement;
  readonly chosen = new Set<string>();
  private readonly buttons = new Map<string, HTMLButtonElement>();
  private readonly seats = new Map<string, Seat>();

  constructor(
    seats: Seat[],
    private readonly currency: string,
    private readonly choosing: boolean,
    private readonly onChange: () => void = () => {},
  ) {
    const sections = new Map<string, Map<number, Seat[]>>();
    for (const seat of seats) {
      const rows = sections.get(seat.section) ?? new Map<number, Seat[]>();
      rows.set(seat.row, [...(rows.get(seat.row) ?? []), seat]);
      sections.set(seat.section, rows);
    }
    this.element = h(
      "div",
      { class: "seatmap" },
      h(
        "p",
        { class: "legend", "aria-hidden": "true" },
        h("span", { class: "seat available" }, ""), " available ",
        h("span", { class: "seat held" }, ""), " being bought ",
        h("span", { class: "seat sold" }, ""), " sold ",
        ...(choosing ? [h("span", { class: "seat chosen" }, ""), " yours"] : []),
      ),
      [...sections].map(([section, rows]) =>
        h(
          "fieldset",
          { class: "section" },
          h("legend", {}, `Section ${section}`),
          [...rows].map(([row, rowSeats]) =>
            h(
              "div",
              { class: "row", role: "group", "aria-label": `Section ${section}, row ${row}` },
              h("span", { class: "row-label", "aria-hidden": "true" }, String(row)),
              rowSeats.map((seat) => this.button(seat)),
            ),
          ),
        ),
      ),
    );
    this.update(seats);
  }

  private button(seat: Seat): HTMLButtonElement {
    const button = h("button", { type: "button", class: "seat", "data-seat": seat.seatId }, String(seat.number));
    button.addEventListener("click", () => this.toggle(seat.seatId));
    button.addEventListener("keydown", (event) => this.move(event, seat));
    this.buttons.set(seat.seatId, button);
    return button;
  }

  /** New states from inventory; a chosen seat that someone else took is unchosen. */
  update(seats: Seat[]): void {
    for (const seat of seats) {
      this.seats.set(seat.seatId, seat);
      const button = this.buttons.get(seat.seatId);
      if (!button) continue;
      const state = STATE[seat.status] ?? "unknown";
      if (state !== "available") this.chosen.delete(seat.seatId);
      const chosen = this.chosen.has(seat.seatId);
      button.className = `seat ${chosen ? "chosen" : state}`;
      button.dataset.state = state;
      button.disabled = !this.choosing || state !== "available";
      if (this.choosing) button.setAttribute("aria-pressed", String(chosen));
      const price = money(seat.priceCents, this.currency);
      button.setAttribute("aria-label", `${seatLabel(seat)}, ${price}, ${chosen ? "chosen" : state}`);
      button.title = `${seatLabel(seat)} · ${price} · ${state}`;
    }
  }

  private toggle(seatId: string): void {
    if (!this.choosing) return;
    if (this.chosen.has(seatId)) this.chosen.delete(seatId);
    else if (this.chosen.size < MAX_SEATS) this.chosen.add(seatId);
    this.update([this.seats.get(seatId)!]);
    this.onChange();
  }

  /** Arrow keys move along a row and between rows, skipping seats that cannot be picked. */
  private move(event: KeyboardEvent, seat: Seat): void {
    const step: Record<string, [number, number]> = {
      ArrowLeft: [0, -1],
      ArrowRight: [0, 1],
      ArrowUp: [-1, 0],
      ArrowDown: [1, 0],
    };
    const delta = step[event.key];
    if (!delta) return;
    event.preventDefault();
    const [dRow, dNumber] = delta;
    for (let i = 1; i < 200; i++) {
      const target = this.buttons.get(`${seat.section}-${seat.row + dRow * i}-${seat.number + dNumber * i}`);
      if (!target) return;
      if (!target.disabled) {
        target.focus();
        return;
      }
    }
  }

  seatsChosen(): Seat[] {
    return [...this.chosen].map((id) => this.seats.get(id)!).filter(Boolean);
  }
}
