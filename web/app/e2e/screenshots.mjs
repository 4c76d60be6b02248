// Screenshots of every page at desktop and phone width, for docs/web.md. Run by
// `make web-screenshots` (web/tests/browser/screenshots.rs prepares a mesh: events,
// rooms, a sold-out show). Arguments: base, dir.

import { args, base, fan, pay, pickSeats, run, signIn } from "./lib.mjs";

const WIDTHS = {
  desktop: { width: 1280, height: 900 },
  phone: { width: 390, height: 844 },
};

await run(async (browser) => {
  const shots = [];
  for (const [width, viewport] of Object.entries(WIDTHS)) {
    const shoot = async (page, name) => {
      const path = `${args.dir}/${name}-${width}.png`;
      await page.screenshot({ path, fullPage: width === "desktop" ? false : true });
      shots.push(path);
    };
    const person = async (user) => {
      const { page } = await fan(browser, { viewport });
      await page.goto(`${base}/`);
      await signIn(page, user);
      return page;
    };

    let page = await person(`ana-${width}`);
    await page.locator(".events a.event").first().waitFor();
    await shoot(page, "events");
    await page.goto(`${base}/#/event/lanterns`);
    await page.locator("button.seat[data-state=sold]").first().waitFor();
    await shoot(page, "event");

    page = await person(`wait-${width}`);
    await page.goto(`${base}/#/room/queue`);
    await page.locator("#position", { hasText: /in line/ }).waitFor();
    await shoot(page, "room");

    page = await person(`early-${width}`);
    await page.goto(`${base}/#/room/premiere`);
    await page.locator("#position", { hasText: "pre-queue" }).waitFor();
    await shoot(page, "pre-queue");

    page = await person(`buyer-${width}`);
    await page.goto(`${base}/#/room/lanterns`);
    await page.locator("#time-left").waitFor();
    await pickSeats(page, width === "desktop" ? ["A-1-7", "A-1-8"] : ["A-2-7", "A-2-8"]);
    await shoot(page, "admitted");
    await pay(page, "tok_visa", `buyer-${width}@example.com`);
    await page.locator("[data-outcome=tickets]").waitFor();
    await page.locator(".verified[data-valid]").first().waitFor();
    await page.locator("#delivery li").first().waitFor();
    await shoot(page, "tickets");

    page = await person(`declined-${width}`);
    await page.goto(`${base}/#/room/lanterns`);
    await page.locator("#time-left").waitFor();
    await pay(page, "tok_insufficient_funds");
    await page.locator("[data-outcome=refused]").waitFor();
    await shoot(page, "declined");

    await page.goto(`${base}/#/sold-out/tiny`);
    await page.locator("[data-outcome=sold-out]").waitFor();
    await shoot(page, "sold-out");
    await page.goto(`${base}/#/expired/lanterns`);
    await page.locator("[data-outcome=expired]").waitFor();
    await shoot(page, "expired");

    const { page: ops } = await fan(browser, { viewport });
    await ops.goto(`${base}/#/operator`);
    const form = ops.getByRole("form", { name: "Sign in as an operator" });
    await form.getByLabel("Operator").fill("ops");
    await form.getByRole("button", { name: "Sign in as operator" }).click();
    await ops.getByLabel(/Drop/).fill("lanterns");
    await ops.getByRole("button", { name: "Watch" }).click();
    await ops.locator("table.figures tbody tr").first().waitFor();
    // Enough points for a line: the view polls once a second.
    await ops.waitForFunction(() => document.querySelectorAll("table.figures caption").length > 0, null, { polling: 500 });
    for (let i = 0; i < 5; i++) await ops.waitForTimeout(1000);
    await shoot(ops, "operator");
  }
  return { shots };
});
