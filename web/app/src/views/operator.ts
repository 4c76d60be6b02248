// The operator's live view of a drop: for each event of the drop (a `ticketdrop drop
// --protocol all` makes one per protocol), once a second from the services' own APIs —
// the room's counts (GetRoom), the seats' definitive state (GetEvent), the refusals by
// reason (FailureSummary) and the protocol the purchases ran under (ListTransactions) —
// drawn as charts: queue depth, fans holding a turn and buying now, seats sold per
// second, refusals by reason.

import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Title,
  Tooltip,
} from "chart.js";

import type { Mesh } from "../api";
import { h, page, replace } from "../dom";
import { explain, refusal } from "../errors";
import { FailureGroupBy } from "../gen/ticketdrop/v1/coordinator_pb";
import { Protocol } from "../gen/ticketdrop/v1/common_pb";
import { sleep } from "../retry";
import { session } from "../session";
import { getRoom } from "./event";
import { signInForm } from "./signin";

Chart.register(LineController, LineElement, PointElement, BarController, BarElement, CategoryScale, LinearScale, Legend, Title, Tooltip);

/** Points kept per series: five minutes at one a second. */
const WINDOW = 300;
const POLL_MS = 1_000;
const COLOURS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bf3989"];

const PROTOCOL_NAMES: Record<number, string> = {
  [Protocol.TWO_PHASE_COMMIT]: "2pc",
  [Protocol.SAGA]: "saga",
  [Protocol.LEASE]: "lease",
};

interface Series {
  eventId: string;
  protocols: Set<string>;
  lastSold?: { at: number; sold: number };
}

export async function showOperator(m: Mesh, signal: AbortSignal): Promise<void> {
  const who = session.current();
  if (!who?.admin) {
    page(
      "Live view of a drop",
      h("section", { class: "card" }, h("p", {}, "The live view reads the transaction log: sign in as an operator."), signInForm(m.site, true)),
    );
    return;
  }
  const drop = h("input", { id: "drop", name: "drop", placeholder: "rush", required: true, value: sessionStorage.getItem("ticketdrop.drop") ?? "" });
  const form = h(
    "form",
    { class: "search" },
    h("label", { for: "drop" }, "Drop (event id, or the prefix its events share)"),
    drop,
    h("button", { type: "submit" }, "Watch"),
  );
  const status = h("p", { class: "muted", role: "status" });
  const table = h("table", { class: "figures" });
  const canvases = ["waiting", "active", "sold", "reasons"].map((id) => h("canvas", { id: `chart-${id}`, role: "img" }));
  page(
    "Live view of a drop",
    form,
    status,
    table,
    h("div", { class: "charts" }, canvases.map((c) => h("figure", {}, c))),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("ticketdrop.drop", drop.value.trim());
    location.reload();
  });
  const prefix = drop.value.trim();
  if (!prefix) {
    status.textContent = "Name a drop to watch its events.";
    return;
  }

  // The drop's events: the one named, or those whose ids start with it (rush-2pc, ...).
  const events: string[] = [];
  let token = "";
  for (let pageNo = 0; pageNo < 50; pageNo++) {
    const listed = await m.inventory.listEvents({ pageSize: 100, pageToken: token }, { signal });
    events.push(...listed.events.map((e) => e.eventId).filter((id) => id === prefix || id.startsWith(`${prefix}-`)));
    token = listed.nextPageToken;
    if (!token) break;
  }
  if (!events.length) {
    status.textContent = `No event is named ${prefix} or starts with ${prefix}-.`;
    return;
  }
  const series: Series[] = events.sort().map((eventId) => ({ eventId, protocols: new Set() }));
  const labels: string[] = [];
  const line = (canvas: HTMLCanvasElement, title: string, stacked = false) =>
    new Chart(canvas, {
      type: "line",
      data: { labels, datasets: [] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: { title: { display: true, text: title } },
        scales: { y: { beginAtZero: true, stacked } },
      },
    });
  const waiting = line(canvases[0], "Waiting in the queue");
  const active = line(canvases[1], "Holding a turn (dashed: buying now)");
  const sold = line(canvases[2], "Seats sold per second");
  const reasons = new Chart<"bar", number[], string>(canvases[3], {
    type: "bar",
    data: { labels: [] as string[], datasets: [] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      plugins: { title: { display: true, text: "Refused purchases by reason" } },
      scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } },
    },
  });
  canvases[0].setAttribute("aria-label", "Chart of fans waiting in the queue per event");
  canvases[1].setAttribute("aria-label", "Chart of fans holding a turn and buying per event");
  canvases[2].setAttribute("aria-label", "Chart of seats sold per second per event");
  canvases[3].setAttribute("aria-label", "Chart of refused purchases by reason per event");
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    waiting.data.datasets.push({ label: s.eventId, data: [], borderColor: colour, pointRadius: 0 });
    active.data.datasets.push({ label: `${s.eventId} holding`, data: [], borderColor: colour, pointRadius: 0 });
    active.data.datasets.push({ label: `${s.eventId} buying`, data: [], borderColor: colour, borderDash: [4, 3], pointRadius: 0 });
    sold.data.datasets.push({ label: s.eventId, data: [], borderColor: colour, pointRadius: 0 });
  });
  const since = timestampFromMs(Date.now() - 24 * 3600 * 1000);
  status.textContent = `Watching ${series.length} event${series.length === 1 ? "" : "s"}, once a second.`;

  for (let tick = 0; !signal.aborted; tick++) {
    const now = Date.now();
    labels.push(new Date(now).toISOString().slice(11, 19));
    if (labels.length > WINDOW) labels.shift();
    const rows: HTMLTableRowElement[] = [];
    const refusals = new Map<string, Map<string, number>>();
    await Promise.all(
      series.map(async (s, i) => {
        try {
          const [room, event, failures] = await Promise.all([
            getRoom(m, s.eventId, signal),
            m.inventory.getEvent({ eventId: s.eventId }, { signal }),
            m.coordinator((c) => c.failureSummary({ eventId: s.eventId, groupBy: FailureGroupBy.ERROR, since }, { signal })),
          ]);
          if (s.protocols.size === 0 || tick % 10 === 0) {
            const recent = await m.coordinator((c) => c.listTransactions({ eventId: s.eventId, pageSize: 50 }, { signal }));
            recent.transactions.forEach((t) => s.protocols.add(PROTOCOL_NAMES[t.protocol] ?? "?"));
          }
          const soldNow = event.total?.sold ?? 0;
          const rate = s.lastSold ? ((soldNow - s.lastSold.sold) * 1000) / Math.max(1, now - s.lastSold.at) : 0;
          s.lastSold = { at: now, sold: soldNow };
          push(waiting.data.datasets[i].data as number[], Number(room?.waiting ?? 0));
          push(active.data.datasets[2 * i].data as number[], Number(room?.active ?? 0));
          push(active.data.datasets[2 * i + 1].data as number[], Number(room?.purchasing ?? 0));
          push(sold.data.datasets[i].data as number[], Math.round(rate * 10) / 10);
          const byReason = new Map(failures.groups.map((g) => [g.label || g.key, Number(g.count)]));
          refusals.set(s.eventId, byReason);
          rows[i] = h(
            "tr",
            { "data-event": s.eventId },
            h("th", { scope: "row" }, s.eventId),
            h("td", {}, [...s.protocols].join(", ") || "—"),
            h("td", { "data-figure": "waiting" }, String(room?.waiting ?? 0)),
            h("td", { "data-figure": "purchasing" }, String(room?.purchasing ?? 0)),
            h("td", { "data-figure": "admitted" }, String(room?.admitted ?? 0)),
            h("td", { "data-figure": "sold" }, `${soldNow} / ${event.event?.capacity ?? 0}`),
            h("td", {}, (Math.round(rate * 10) / 10).toString()),
            h("td", { "data-figure": "refused" }, String(failures.total)),
          );
        } catch (error) {
          if (!signal.aborted) {
            rows[i] = h("tr", {}, h("th", { scope: "row" }, s.eventId), h("td", { colspan: 7 }, explain(refusal(error))));
          }
        }
      }),
    );
    if (signal.aborted) return;
    replace(
      table,
      h("caption", {}, "Now"),
      h(
        "thead",
        {},
        h("tr", {}, ["Event", "Protocol", "Waiting", "Buying", "Admitted", "Sold", "Sold/s", "Refused"].map((t) => h("th", { scope: "col" }, t))),
      ),
      h("tbody", {}, rows),
    );
    const allReasons = [...new Set([...refusals.values()].flatMap((r) => [...r.keys()]))].sort();
    reasons.data.labels = series.map((s) => `${s.eventId} (${[...s.protocols].join(", ") || "—"})`);
    reasons.data.datasets = allReasons.map((reason, i) => ({
      label: reason,
      data: series.map((s) => refusals.get(s.eventId)?.get(reason) ?? 0),
      backgroundColor: COLOURS[i % COLOURS.length],
    }));
    for (const chart of [waiting, active, sold, reasons]) chart.update();
    await sleep(Math.max(0, POLL_MS - (Date.now() - now)), signal).catch(() => undefined);
  }
}

function push(data: number[], value: number): void {
  data.push(value);
  if (data.length > WINDOW) data.shift();
}
