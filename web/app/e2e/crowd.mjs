// Browser fans in a drop beside the command line's fans: each signs in, joins the queue
// (at the moment its turn comes in `users`' order), waits, buys the best available seat
// when admitted, and ends on its tickets or on sold out. Arguments: base, event, users.

import { args, base, fan, outcome, pay, run, signIn } from "./lib.mjs";

await run(async (browser) => {
  const fans = [];
  // One after the other into the queue (so their join order is this order), then all
  // wait and buy at once.
  for (const user of args.users) {
    const { page } = await fan(browser);
    await page.goto(`${base}/#/room/${encodeURIComponent(args.event)}`);
    await signIn(page, user);
    await page.locator("#position", { hasText: /in line|pre-queue/ }).or(page.locator("#time-left, [data-outcome]")).first().waitFor();
    fans.push({ user, page, joined_at: Date.now() });
  }
  return Promise.all(
    fans.map(async ({ user, page, joined_at }) => {
      await page.locator("#time-left, [data-outcome]").first().waitFor();
      let admitted = false;
      if (await page.locator("#time-left").count()) {
        admitted = true;
        await pay(page, "tok_visa");
      }
      const ended = await outcome(page);
      const seats = ended === "tickets" ? await page.locator(".ticket .seat-label").allTextContents() : [];
      return { user, joined_at, admitted, outcome: ended, ended_at: Date.now(), seats, outcomes_shown: await page.locator("[data-outcome]").count() };
    }),
  );
});
