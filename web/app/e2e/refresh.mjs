// A fan waiting in the queue reloads the page, then opens it in a second tab: the same
// place every time. Arguments: base, event, user.

import { args, base, fan, patience, run, signIn, waitForPosition } from "./lib.mjs";

await run(async (browser) => {
  const { context, page } = await fan(browser);
  await page.goto(`${base}/#/room/${encodeURIComponent(args.event)}`);
  await signIn(page, args.user);
  const first = await waitForPosition(page);
  await page.reload();
  const afterReload = await waitForPosition(page);
  const second = await context.newPage();
  second.setDefaultTimeout(patience);
  await second.goto(`${base}/#/room/${encodeURIComponent(args.event)}`);
  const inSecondTab = await waitForPosition(second);
  const firstTabStill = await waitForPosition(page);
  return { first, after_reload: afterReload, second_tab: inSecondTab, first_tab_after: firstTabStill };
});
