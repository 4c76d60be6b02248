// The pre-queue: fans who arrive before the sale opens wait with a countdown; at the
// opening each is given a place; fans who come after the opening queue behind them.
// Arguments: base, event, early (users), late (users).

import { args, base, fan, patience, position, run, signIn, step, waitForPosition } from "./lib.mjs";

/** A fan's place once the sale has opened: a number in line, or admitted (0). */
async function placed(page) {
  await page.locator("#position", { hasText: /in line/ }).or(page.locator("#time-left")).first().waitFor();
  return (await page.locator("#time-left").count()) ? 0 : position(page);
}

/** The line the test waits for before it brings the opening forward. */
const EVERY_EARLY_FAN_WAITS = "every early fan's page shows the pre-queue";

await run(async (browser) => {
  const early = [];
  for (const user of args.early) {
    const { page } = await fan(browser);
    await page.goto(`${base}/#/room/${encodeURIComponent(args.event)}`);
    await signIn(page, user);
    await page.locator("#position", { hasText: "pre-queue" }).waitFor();
    const countdown = await page.locator("#countdown").textContent();
    early.push({ user, page, countdown });
  }
  // The test opens the sale on this line: every early page has shown its countdown.
  step(EVERY_EARLY_FAN_WAITS);
  for (const { page } of early) await placed(page);
  // Settled: one fan holds the room's only turn and the others are 1, 2, ... in line
  // (a page re-reads its place every couple of seconds after the admission).
  let earlyPlaces = [];
  const settled = () => {
    const places = earlyPlaces.map((f) => f.place).sort((a, b) => a - b);
    return places.every((place, i) => place === i);
  };
  const deadline = Date.now() + patience;
  do {
    if (earlyPlaces.length) await early[0].page.waitForTimeout(250);
    earlyPlaces = [];
    for (const { user, page, countdown } of early) {
      earlyPlaces.push({ user, countdown, place: await placed(page) });
    }
  } while (!settled() && Date.now() < deadline);
  const late = [];
  for (const user of args.late) {
    const { page } = await fan(browser);
    await page.goto(`${base}/#/room/${encodeURIComponent(args.event)}`);
    await signIn(page, user);
    late.push({ user, place: await waitForPosition(page) });
  }
  return { early: earlyPlaces, late };
});
