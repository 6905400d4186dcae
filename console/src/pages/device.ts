/**
 * One device: what the chain says of it (stake, capacity, reservations, reputation, heartbeat,
 * slashes), its placements, and its resource manager's decisions over time as a chart (received
 * over MQTT since the page opened: the broker does not retain them).
 */
import { stepChart } from "../chart";
import type { DeviceView, SlashView } from "../chain";
import { cpu, h, mib, replaceKeepingFocus, seconds, short, table, tokens } from "../dom";
import { decisionSeries } from "../model";
import { trustBadge } from "../verify";
import { observeDevices, onlineText, type AppContext, type Page } from "./page";
import { timelinePage } from "./timeline";

export function devicePage(ctx: AppContext, deviceId: number): Page {
  const summary = h("div", { class: "region" }, h("p", { class: "lede" }, "Reading the chain…"));
  const live = h("div", { class: "region" });
  const slashesRegion = h("div", { class: "region" });
  const placements = timelinePage(ctx, new URLSearchParams(), { deviceId });
  let device: DeviceView | undefined;
  let slashes: SlashView[] = [];
  let missing = false;

  const redrawSummary = () => {
    if (missing) {
      summary.replaceChildren(h("p", { class: "lede" }, `No device ${deviceId} is enrolled on this chain.`));
      return;
    }
    if (device === undefined) return;
    const d = device;
    const online = onlineText(ctx, deviceId, d.stale);
    const badge = trustBadge(ctx.live.state.trust.get(deviceId), (a) => a);
    const item = (k: string, v: Node | string) => [h("dt", {}, k), h("dd", {}, v)];
    summary.replaceChildren(
      h(
        "dl",
        { class: "facts" },
        item("Online", h("span", { class: `pill ${online.cls}` }, online.text)),
        item(
          "Messages",
          h(
            "span",
            { class: `pill ${badge.cls}`, "data-field": "signature", "data-signer": badge.signer },
            badge.text,
          ),
        ),
        item("Heartbeat age", d.lastHeartbeat ? seconds(Date.now() / 1000 - d.lastHeartbeat) : "never"),
        item("Status", d.status),
        item("Stake", `${tokens(d.stake)} SHOAL`),
        item("Capacity", `${cpu(d.cpuMillicores)} / ${mib(d.memoryMiB)}`),
        item(
          "Reserved",
          `${cpu(d.cpuReservedMillicores)} / ${mib(d.memoryReservedMiB)} by ${d.livePlacements} live placement(s)`,
        ),
        item(
          "Reputation",
          `${d.reputation.completed} completed, ${d.reputation.failed} failed, ${d.reputation.expired} expired`,
        ),
        item("Owner", h("code", { class: "wrap" }, d.owner)),
        item("Operator", h("code", { class: "wrap" }, d.operator)),
        item("Endpoint", h("code", { class: "wrap" }, d.endpoint || "—")),
        item("Platform", d.platform),
        item("Labels", d.labels.join(", ") || "—"),
      ),
    );
  };

  const redrawLive = () => {
    const state = ctx.live.state;
    const decisions = state.decisions.get(deviceId) ?? [];
    const metrics = state.metrics.get(deviceId);
    const parts: Node[] = [h("h3", {}, "Resource decisions")];
    if (state.broker !== "connected")
      parts.push(h("p", {}, "Live data is unavailable: the MQTT broker cannot be reached (see the banner)."));
    if (decisions.length === 0)
      parts.push(
        h(
          "p",
          { id: "no-decisions" },
          "No resource decision received since this page opened. The broker does not retain them: the chart fills as the resource manager publishes.",
        ),
      );
    else {
      const cpuSeries = decisionSeries(decisions, "cpu");
      const memSeries = decisionSeries(decisions, "memory");
      const charts = h("div", { class: "charts" });
      if (cpuSeries.length)
        charts.append(
          stepChart({ title: "CPU limit (millicores)", unit: "m", series: cpuSeries, until: Date.now() }),
        );
      if (memSeries.length)
        charts.append(
          stepChart({ title: "Memory limit (MiB)", unit: "", series: memSeries, until: Date.now() }),
        );
      parts.push(charts);
      parts.push(
        table(
          "Latest decisions (newest first)",
          [
            "Time (UTC)",
            "Seq",
            "Placement",
            "Resource",
            "From",
            "To",
            "Reason",
            "Metric (value / threshold)",
          ],
          decisions
            .slice(-20)
            .reverse()
            .map((x) => ({
              cells: [
                x.at.slice(11, 19),
                String(x.seq),
                x.placementId,
                x.resource,
                String(x.from),
                String(x.to),
                x.reason,
                `${x.metric} (${x.value} / ${x.threshold})`,
              ],
            })),
          { id: "decisions" },
        ),
      );
    }
    if (metrics)
      parts.push(
        table(
          `Containers at ${metrics.at.slice(11, 19)} UTC (from the device's metrics)`,
          ["Placement", "CPU limit", "CPU used", "Memory limit", "Memory used"],
          metrics.containers.map((c) => ({
            cells: [
              c.placementId,
              cpu(c.limits.cpuMillicores),
              c.cpuMillicores === undefined ? "—" : cpu(c.cpuMillicores),
              mib(c.limits.memoryMiB),
              c.memoryWorkingSetMiB === undefined ? "—" : mib(c.memoryWorkingSetMiB),
            ],
          })),
          { empty: "No container runs on this device." },
        ),
      );
    replaceKeepingFocus(live, ...parts);
  };

  const redrawSlashes = () =>
    replaceKeepingFocus(
      slashesRegion,
      table(
        "Slashes",
        ["Time (UTC)", "Block", "Transaction", "Kind", "Amount", "Bounty", "Stake left", "Evidence"],
        slashes.map((s) => ({
          cells: [
            s.time.slice(0, 19).replace("T", " "),
            String(s.block),
            h("code", { title: s.tx }, short(s.tx)),
            s.kind,
            tokens(s.amount),
            tokens(s.bounty),
            tokens(s.stake),
            s.evidenceCid || "—",
          ],
        })),
        { empty: "This device has never been slashed.", id: "slashes" },
      ),
    );

  return {
    title: `Device ${deviceId}`,
    mount(main) {
      main.replaceChildren(h("h2", { tabindex: -1 }, `Device ${deviceId}`), summary, live, slashesRegion);
      placements.mount(main);
      redrawLive();
    },
    async refresh() {
      const all = await ctx.chain.devices(ctx.head.number);
      observeDevices(ctx, all);
      device = all.find((d) => d.deviceId === deviceId);
      missing = device === undefined;
      if (!missing) [slashes] = await Promise.all([ctx.chain.slashes(deviceId), placements.refresh()]);
      redrawSummary();
      redrawSlashes();
    },
    redraw() {
      redrawSummary();
      redrawLive();
    },
  };
}
