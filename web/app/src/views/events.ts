// The first view: every event, soonest first, and a search over names, venues and
// descriptions.

import type { Mesh } from "../api";
import { h, page, replace } from "../dom";
import { explain, refusal } from "../errors";
import { when } from "../format";
import type { Event } from "../gen/ticketdrop/v1/inventory_pb";

export async function showEvents(m: Mesh, signal: AbortSignal): Promise<void> {
  const list = h("ul", { class: "events", "aria-label": "Events" });
  const status = h("p", { class: "muted", role: "status", "aria-live": "polite" });
  const query = h("input", { id: "search", type: "search", name: "q", placeholder: "artist, venue, city…", autocomplete: "off" });
  const form = h(
    "form",
    { role: "search", class: "search" },
    h("label", { for: "search" }, "Search events"),
    query,
    h("button", { type: "submit" }, "Search"),
  );
  page("Events", form, status, list);

  const show = (events: Event[], what: string) => {
    status.textContent = events.length ? what : "No events found.";
    replace(
      list,
      events.map((event) =>
        h(
          "li",
          {},
          h(
            "a",
            { href: `#/event/${encodeURIComponent(event.eventId)}`, class: "event" },
            h("strong", {}, event.name),
            h("span", {}, when(event.startsAt)),
            h("span", { class: "muted" }, event.venueName),
          ),
        ),
      ),
    );
  };

  const load = async () => {
    try {
      const q = query.value.trim();
      if (q) {
        const found = await m.inventory.searchEvents({ query: q, pageSize: 50 }, { signal });
        show(found.results.map((r) => r.event!).filter(Boolean), `${found.results.length} found for “${q}”.`);
      } else {
        const all = await m.inventory.listEvents({ pageSize: 100 }, { signal });
        show(all.events, `${all.events.length} events.`);
      }
    } catch (error) {
      if (!signal.aborted) status.textContent = explain(refusal(error));
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void load();
  });
  await load();
}
