// How the page writes dates, money, waits and seats for fans.

import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Duration } from "@bufbuild/protobuf/wkt";

const dateFormat = new Intl.DateTimeFormat("en-GB", {
  weekday: "short",
  day: "numeric",
  month: "short",
  year: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  timeZone: "UTC",
  timeZoneName: "short",
});

/** "Fri, 1 Jan 2027, 20:00 UTC". */
export function when(at: Timestamp | undefined): string {
  return at ? dateFormat.format(timestampDate(at)) : "date to be announced";
}

export function millis(at: Timestamp | undefined): number {
  return at ? timestampDate(at).getTime() : 0;
}

/** "45.00 EUR". */
export function money(cents: bigint | number, currency: string): string {
  const value = Number(cents) / 100;
  return new Intl.NumberFormat("en-GB", { style: "currency", currency: currency || "EUR" }).format(value);
}

export function seconds(duration: Duration | undefined): number {
  return duration ? Number(duration.seconds) + duration.nanos / 1e9 : 0;
}

/** "about 2 min", "about 40 s", "less than a second". */
export function wait(totalSeconds: number): string {
  if (totalSeconds < 1) return "less than a second";
  if (totalSeconds < 90) return `about ${Math.round(totalSeconds)} s`;
  if (totalSeconds < 90 * 60) return `about ${Math.round(totalSeconds / 60)} min`;
  return `about ${Math.round(totalSeconds / 3600)} h`;
}

/** "4:07" for a countdown. */
export function clock(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
}

/** A seat as a fan reads it: "Section A, row 12, seat 7". */
export function seatLabel(seat: { section: string; row: number; number: number }): string {
  return `Section ${seat.section}, row ${seat.row}, seat ${seat.number}`;
}
