// A declined card: the page shows the decline in words, and the seat is back on the map.
// Arguments: base, event, user, seat.

import { args, base, fan, outcome, pay, pickSeats, run, signIn } from "./lib.mjs";

await run(async (browser) => {
  const { page } = await fan(browser);
  await page.goto(`${base}/#/room/${encodeURIComponent(args.event)}`);
  await signIn(page, args.user);
  await page.locator("#time-left").waitFor();
  await pickSeats(page, [args.seat]);
  await pay(page, "tok_declined");
  const ended = await outcome(page);
  const reason = await page.locator("[data-outcome]").first().getAttribute("data-reason");
  const message = await page.locator("#purchase-status").textContent();
  const next = await page.locator(".next").textContent();
  await page.goto(`${base}/#/event/${encodeURIComponent(args.event)}`);
  const seat = page.locator(`button.seat[data-seat="${args.seat}"]`);
  await seat.and(page.locator('[data-state="available"]')).waitFor();
  return { outcome: ended, reason, message, next, seat_state: await seat.getAttribute("data-state") };
});
