// The page's entry: finds the mesh (GetSite), shows who is signed in, and routes by the
// URL's fragment: #/ events, #/event/ID, #/room/ID, #/buy/ID, #/sold-out/ID,
// #/expired/ID, #/operator.

import "./style.css";

import { mesh, web, type Mesh } from "./api";
import { h, page, replace } from "./dom";
import { session } from "./session";
import { showEvent } from "./views/event";
import { showEvents } from "./views/events";
import { showExpired, showSoldOut } from "./views/outcome";
import { showOperator } from "./views/operator";
import { showBuy } from "./views/buy";
import { showRoom } from "./views/room";
import { renderAccount } from "./views/signin";

/** Aborted when the fan leaves a view: its streams and timers stop. */
let leaving = new AbortController();

async function route(m: Mesh): Promise<void> {
  leaving.abort();
  leaving = new AbortController();
  const signal = leaving.signal;
  const [, view = "", id = ""] = location.hash.replace(/^#/, "").split("/").map(decodeURIComponent);
  switch (view) {
    case "":
      return showEvents(m, signal);
    case "event":
      return showEvent(m, id, signal);
    case "room":
      return showRoom(m, id, signal);
    case "buy":
      return showBuy(m, id, signal);
    case "sold-out":
      return showSoldOut(m, id);
    case "expired":
      return showExpired(m, id);
    case "operator":
      return showOperator(m, signal);
    default:
      page("Not found", h("p", {}, "There is no such page. ", h("a", { href: "#/" }, "See the events")));
  }
}

async function start(): Promise<void> {
  let site;
  try {
    site = await web.getSite({});
  } catch {
    page("TicketDrop is not answering", h("p", {}, "The page could not reach its server. Reload in a moment."));
    return;
  }
  const m = mesh(site);
  const account = document.getElementById("account") as HTMLElement;
  const refresh = () => {
    renderAccount(account, site);
    void route(m);
  };
  session.onChange(refresh);
  window.addEventListener("hashchange", () => void route(m));
  renderAccount(account, site);
  await route(m);
}

void start().catch((error: unknown) => {
  replace(document.getElementById("main") as HTMLElement, h("p", { role: "alert" }, String(error)));
});
