/** Fleet: every enrolled device with its capacity, usage, stake, reputation, heartbeat and presence. */
import type { DeviceView } from "../chain";
import { cpu, h, link, mib, replaceKeepingFocus, seconds, short, table, tokens } from "../dom";
import { dropSummary, trustBadge } from "../verify";
import { observeDevices, onlineText, type AppContext, type Page } from "./page";

export function fleetPage(ctx: AppContext): Page {
  const lede = h("p", { class: "lede" }, "Reading the chain…");
  const drops = h("p", { id: "drops", "data-field": "drops" });
  const region = h("div", { class: "region" });
  let devices: DeviceView[] | undefined;
  const redraw = () => {
    if (devices === undefined) return;
    const now = Date.now() / 1000;
    const rows = devices.map((d) => {
      const online = onlineText(ctx, d.deviceId, d.stale);
      const m = ctx.live.state.metrics.get(d.deviceId);
      const badge = trustBadge(ctx.live.state.trust.get(d.deviceId), short);
      const used = m?.device
        ? `${cpu(m.device.cpuMillicores)} / ${mib(m.device.memoryMiB)}`
        : ctx.live.state.broker === "connected"
          ? "no metrics yet"
          : "— (no MQTT)";
      return {
        attrs: { "data-device": String(d.deviceId) },
        cells: [
          link(`#/device/${d.deviceId}`, `device ${d.deviceId}`),
          h("span", { class: `pill ${online.cls}`, "data-field": "online" }, online.text),
          h(
            "span",
            {
              class: `pill ${badge.cls}`,
              "data-field": "signature",
              "data-signer": badge.signer,
              title: badge.signer,
            },
            badge.text,
          ),
          h(
            "span",
            { "data-field": "heartbeat" },
            d.lastHeartbeat ? seconds(now - d.lastHeartbeat) : "never",
          ),
          `${cpu(d.cpuMillicores)} / ${mib(d.memoryMiB)}`,
          h(
            "span",
            { "data-field": "reserved" },
            `${cpu(d.cpuReservedMillicores)} / ${mib(d.memoryReservedMiB)}`,
          ),
          used,
          h("span", { "data-field": "placements" }, String(d.livePlacements)),
          h("span", { "data-field": "stake" }, tokens(d.stake)),
          `${d.reputation.completed} / ${d.reputation.failed} / ${d.reputation.expired}`,
          d.status,
          h("code", { title: d.operator }, short(d.operator)),
          h("code", { class: "wrap" }, d.endpoint || "—"),
          `${d.platform}${d.labels.length ? `; ${d.labels.join(", ")}` : ""}`,
        ],
      };
    });
    drops.textContent =
      ctx.live.state.broker === "off"
        ? ""
        : `MQTT messages dropped, not shown: ${dropSummary(ctx.live.state.dropped) || "none"}.`;
    lede.textContent = `${devices.length} device(s) enrolled. Capacity, reservations, stake and reputation are read from the chain at block ${ctx.head.number}; presence and measured usage come from MQTT, each message believed only when signed by its device's operator on chain.`;
    replaceKeepingFocus(
      region,
      table(
        "Devices",
        [
          "Device",
          "Online",
          "Messages (verified signer; dropped)",
          "Heartbeat age",
          "Capacity (CPU / memory)",
          "Reserved",
          "Used (measured)",
          "Live placements",
          "Stake (SHOAL)",
          "Reputation (done / failed / expired)",
          "Status",
          "Operator",
          "Endpoint",
          "Platform; labels",
        ],
        rows,
        { empty: "No device is enrolled yet.", id: "devices" },
      ),
    );
  };
  return {
    title: "Fleet",
    mount(main) {
      main.replaceChildren(h("h2", { tabindex: -1 }, "Fleet"), lede, drops, region);
    },
    async refresh() {
      devices = await ctx.chain.devices(ctx.head.number);
      observeDevices(ctx, devices);
      redraw();
    },
    redraw,
  };
}
