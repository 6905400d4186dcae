/**
 * The placement timeline: every claim, confirmation, failure, release and expiry with its block,
 * time and transaction, and how long after the claim (and after the previous step) it came.
 * Filters by app, device and time; exports what is shown to CSV and to JSON (the JSON of an app
 * filter alone is `npx hardhat placement:history --app <name> --json`, byte for byte).
 */
import type { TimelineRow } from "../../../tasks/lib/timeline";
import type { AppView, DeviceView } from "../chain";
import { h, isoSeconds, link, replaceKeepingFocus, seconds, short, table } from "../dom";
import { download, timelineCsv, timelineJson } from "../export";
import { durations } from "../model";
import type { AppContext, Page } from "./page";

export interface TimelineFilters {
  app: string;
  device: string;
  /** datetime-local values, read as UTC. */
  from: string;
  to: string;
}

export function readFilters(query: URLSearchParams): TimelineFilters {
  return {
    app: query.get("app") ?? "",
    device: query.get("device") ?? "",
    from: query.get("from") ?? "",
    to: query.get("to") ?? "",
  };
}

export function timelinePage(ctx: AppContext, query: URLSearchParams, embedded?: { deviceId: number }): Page {
  const filters = readFilters(query);
  if (embedded) filters.device = String(embedded.deviceId);
  let apps: AppView[] = [];
  let devices: DeviceView[] = [];
  let rows: TimelineRow[] = [];
  let shown: TimelineRow[] = [];
  const status = h("p", { class: "lede", "aria-live": "polite" }, "Reading the chain…");
  const region = h("div", { class: "region" });
  const appSelect = h("select", { id: "filter-app", name: "app" });
  const deviceSelect = h("select", { id: "filter-device", name: "device" });
  const fromInput = h("input", {
    id: "filter-from",
    name: "from",
    type: "datetime-local",
    step: 1,
    value: filters.from,
  });
  const toInput = h("input", {
    id: "filter-to",
    name: "to",
    type: "datetime-local",
    step: 1,
    value: filters.to,
  });
  const fileBase = () =>
    ["placement-history", filters.app, filters.device && `device-${filters.device}`]
      .filter(Boolean)
      .join("-");
  const csvButton = h("button", { type: "button", id: "export-csv" }, "Export CSV");
  const jsonButton = h("button", { type: "button", id: "export-json" }, "Export JSON");
  csvButton.addEventListener("click", () => download(`${fileBase()}.csv`, "text/csv", timelineCsv(shown)));
  jsonButton.addEventListener("click", () =>
    download(`${fileBase()}.json`, "application/json", timelineJson(shown)),
  );

  const options = (select: HTMLSelectElement, values: [string, string][], current: string) => {
    const same =
      select.options.length === values.length + 1 &&
      values.every(([v], i) => select.options[i + 1].value === v);
    if (!same)
      select.replaceChildren(
        h("option", { value: "" }, select === appSelect ? "all apps" : "all devices"),
        ...values.map(([v, text]) => h("option", { value: v }, text)),
      );
    select.value = current;
  };

  const inTime = (r: TimelineRow) => {
    if (filters.from === "" && filters.to === "") return true;
    if (r.time === "") return false;
    const t = Date.parse(r.time);
    return (
      (filters.from === "" || t >= Date.parse(`${filters.from}Z`)) &&
      (filters.to === "" || t <= Date.parse(`${filters.to}Z`))
    );
  };

  const redraw = () => {
    options(
      appSelect,
      apps.map((a) => [a.name, a.name]),
      filters.app,
    );
    options(
      deviceSelect,
      devices.map((d) => [String(d.deviceId), `device ${d.deviceId}`]),
      filters.device,
    );
    const spans = durations(rows);
    const kept = rows.map((r, i) => ({ r, d: spans[i] })).filter(({ r }) => inTime(r));
    shown = kept.map(({ r }) => r);
    status.textContent = `${shown.length} row(s) of ${new Set(shown.map((r) => r.placementId)).size} placement(s), read from the chain at block ${ctx.head.number}.`;
    replaceKeepingFocus(
      region,
      table(
        embedded ? `Placements of device ${embedded.deviceId}` : "Placement timeline",
        [
          "Time (UTC)",
          "Block",
          "Transaction",
          "Event",
          "Placement",
          "Deployment",
          "Device",
          "State",
          "Reason",
          "Since claim",
          "Since previous",
        ],
        kept.map(({ r, d }) => ({
          attrs: { "data-placement": String(r.placementId), "data-event": r.event },
          cells: [
            isoSeconds(r.time) || "(now)",
            r.block ? String(r.block) : "",
            r.tx ? h("code", { title: r.tx }, short(r.tx)) : "",
            r.event,
            String(r.placementId),
            String(r.deploymentId),
            link(`#/device/${r.deviceId}`, String(r.deviceId)),
            h("span", { class: `state ${r.state}` }, r.state),
            r.reason,
            d.sinceClaim === undefined ? "" : seconds(d.sinceClaim),
            d.sincePrevious === undefined ? "" : seconds(d.sincePrevious),
          ],
        })),
        { empty: "No placement matches.", id: "timeline" },
      ),
    );
  };

  const apply = () => {
    filters.app = appSelect.value;
    if (!embedded) filters.device = deviceSelect.value;
    filters.from = fromInput.value;
    filters.to = toInput.value;
    if (!embedded) {
      const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v !== ""));
      history.replaceState(
        null,
        "",
        `${location.pathname}${location.search}#/timeline${q.size ? `?${q}` : ""}`,
      );
    }
    ctx.requestRefresh();
  };
  for (const control of [appSelect, deviceSelect, fromInput, toInput])
    control.addEventListener("change", apply);

  const page: Page = {
    title: "Placement timeline",
    mount(main) {
      const form = h(
        "form",
        { class: "filters", "aria-label": "Filter the timeline" },
        h("label", { for: "filter-app" }, "App ", appSelect),
        embedded ? null : h("label", { for: "filter-device" }, "Device ", deviceSelect),
        h("label", { for: "filter-from" }, "From (UTC) ", fromInput),
        h("label", { for: "filter-to" }, "To (UTC) ", toInput),
        h("span", { class: "actions" }, csvButton, jsonButton),
      );
      form.addEventListener("submit", (e) => e.preventDefault());
      if (embedded) main.append(h("h3", {}, "Placements"), form, status, region);
      else main.replaceChildren(h("h2", { tabindex: -1 }, "Placement timeline"), form, status, region);
    },
    async refresh() {
      const [a, d] = await Promise.all([ctx.chain.apps(), ctx.chain.devices(ctx.head.number)]);
      apps = a;
      devices = d;
      // Like `placement:history --app`: the app's deployments, none if no app has that name.
      const app = apps.find((x) => x.name === filters.app);
      const deployments =
        filters.app === "" ? undefined : new Set(app ? await ctx.chain.deploymentIdsOf(app.appId) : []);
      rows = await ctx.chain.timeline(ctx.head.number, {
        deployments,
        device: filters.device === "" ? undefined : Number(filters.device),
      });
      redraw();
    },
    redraw: () => undefined,
  };
  return page;
}
