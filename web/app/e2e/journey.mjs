// One fan's whole journey: the events, a search, the event's live seat map, the queue
// (waiting behind another fan), the admission, two seats picked on the map, the payment,
// the purchase's steps and the tickets with their QR codes.
// Arguments: base, user, query, event_name, seats, email.

import { args, base, fan, outcome, pay, pickSeats, run, signIn, step, tickets, waitForPosition } from "./lib.mjs";

await run(async (browser) => {
  const { page } = await fan(browser);
  step("open the page");
  await page.goto(`${base}/`);
  await page.getByRole("heading", { name: "Events" }).waitFor();
  const listed = await page.locator(".events a.event").count();
  step("search");
  await page.getByLabel("Search events").fill(args.query);
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByText(/found for/).waitFor();
  const found = await page.locator(".events a.event strong").allTextContents();
  await page.getByRole("link", { name: new RegExp(args.event_name) }).click();
  await page.getByRole("heading", { name: args.event_name }).waitFor();
  const mapSeats = await page.locator("button.seat[data-seat]").count();
  const venue = await page.locator(".venue").textContent();
  step("join the queue");
  await page.getByRole("link", { name: "Join the queue" }).click();
  step("sign in");
  await signIn(page, args.user);
  step("wait in line");
  const waitingAt = await waitForPosition(page);
  const progress = await page.locator("#progress").getAttribute("value");
  // The test frees the slot ahead once the room counts this fan waiting and this line is
  // in the log: the page leaves the queue view at its turn, and what it showed is read.
  step("in line: place and progress read");
  await page.locator("#time-left").waitFor();
  const timeLeft = await page.locator("#time-left").textContent();
  step("admitted: pick seats");
  await pickSeats(page, args.seats);
  step("pay");
  await pay(page, "tok_visa", args.email);
  const ended = await outcome(page);
  const got = await tickets(page);
  // The purchase's stream brings its steps, its end, then the confirmation's attempts, in
  // that order: once a delivery shows, every step and the end are on the page too (the
  // tickets may show first, from the purchase's own answer).
  await page.locator("#delivery li[data-delivered=true]").first().waitFor();
  const steps = await page.locator(".steps li").allTextContents();
  const delivery = await page.locator("#delivery li").allTextContents();
  return { listed, found, map_seats: mapSeats, venue, waiting_at: waitingAt, progress, time_left: timeLeft, outcome: ended, tickets: got, steps, delivery };
});
