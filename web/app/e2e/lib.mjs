// What the browser tests share: the system's Chromium driven by Playwright (no browser
// download: playwright-core with the Debian package's binary), a fan signing in, and
// the one JSON line each scenario prints for the Rust test that started the mesh.
//
// A scenario runs as `node e2e/<scenario>.mjs '<json arguments>'`; `base` is the page's
// URL. Every wait has a ceiling (`patience_ms`) and waits for a condition, never for a
// length of time.

import { chromium } from "playwright-core";

export const args = JSON.parse(process.argv[2] ?? "{}");
export const base = args.base ?? process.env.TICKETDROP_WEB_URL ?? "http://127.0.0.1:50080";
/** The longest any one condition is waited for. */
export const patience = args.patience_ms ?? 120_000;

export async function launch() {
  const browser = await chromium.launch({
    executablePath: process.env.TICKETDROP_CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    // Root (CI) cannot use Chromium's sandbox; the pages are our own.
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  });
  browser.on("disconnected", () => console.error("the browser went away"));
  return browser;
}

/** Notes a step on stderr: the test shows these when it times out. */
export function step(text) {
  console.error(`${new Date().toISOString()} ${text}`);
}

/** A fan of their own: a browser context is one person's browser (storage, cookies). */
export async function fan(browser, options = {}) {
  const context = await browser.newContext({ viewport: options.viewport ?? { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(patience);
  page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
  page.on("crash", () => console.error(`page crashed: ${page.url()}`));
  page.on("close", () => console.error(`page closed: ${page.url()}`));
  page.on("console", (message) => {
    if (message.type() === "error") console.error(`page console: ${message.text()}`);
  });
  return { context, page };
}

/** Signs `user` in with the header's form (the stack's development sign-in). */
export async function signIn(page, user) {
  const form = page.getByRole("form", { name: "Sign in", exact: true }).first();
  await form.getByLabel("Name").fill(user);
  await form.getByRole("button", { name: "Sign in" }).click();
  await page.getByText(`Signed in as ${user}`).waitFor();
}

/** The queue's position sentence, as a number ("You are number 3 in line." → 3). */
export async function position(page) {
  const text = await page.locator("#position").textContent();
  const match = /number (\d+) in line/.exec(text ?? "");
  return match ? Number(match[1]) : null;
}

/** Waits until the page shows a number in line, and returns it. */
export async function waitForPosition(page) {
  await page.locator("#position", { hasText: /number \d+ in line/ }).waitFor();
  return position(page);
}

/** Waits for the end of the purchase or the queue: tickets, sold-out, refused or expired. */
export async function outcome(page) {
  const ended = page.locator("[data-outcome]");
  await ended.first().waitFor();
  return ended.first().getAttribute("data-outcome");
}

/** Picks the named seats on the map (they must be available). */
export async function pickSeats(page, seats) {
  for (const seat of seats) {
    const button = page.locator(`button.seat[data-seat="${seat}"]`);
    await button.and(page.locator('[data-state="available"]')).waitFor();
    await button.click();
    await page.locator(`button.seat[data-seat="${seat}"][aria-pressed="true"]`).waitFor();
  }
}

/** Pays with the test card `token` (and `email`, if given). */
export async function pay(page, token, email) {
  await page.locator(`input[name=card][value="${token}"]`).check();
  if (email) await page.getByLabel(/Email for your tickets/).fill(email);
  await page.getByRole("button", { name: "Pay" }).click();
}

/** The tickets on the page: seat label, token, and whether the page verified it. */
export async function tickets(page) {
  // Every ticket is verified on its own call: read them once each one has its answer.
  await page.locator(".verified[data-valid]").first().waitFor();
  await page.waitForFunction(() => {
    const shown = document.querySelector("[data-tickets]");
    return shown !== null && document.querySelectorAll(".ticket .verified[data-valid]").length === Number(shown.getAttribute("data-tickets"));
  });
  return page.locator(".ticket").evaluateAll((articles) =>
    articles.map((a) => ({
      label: a.querySelector(".seat-label")?.textContent ?? "",
      token: a.querySelector(".token")?.textContent ?? "",
      valid: a.querySelector(".verified")?.getAttribute("data-valid") === "true",
      qr: (a.querySelector("img")?.getAttribute("src") ?? "").startsWith("data:image/png"),
    })),
  );
}

/** Runs `scenario` with a browser, prints its result as one JSON line, and exits. */
export async function run(scenario) {
  const browser = await launch();
  try {
    const result = await scenario(browser);
    console.log(JSON.stringify(result));
  } catch (error) {
    // What each page showed when the scenario failed.
    for (const context of browser.contexts()) {
      for (const page of context.pages()) {
        const shown = await page.locator("main").innerText().catch(() => "(unreadable)");
        console.error(`--- ${page.url()}\n${shown}`);
      }
    }
    throw error;
  } finally {
    await browser.close();
  }
}
