/** Apps and deployments: every version with its CIDs and band; every deployment with its replicas. */
import type { AppView, Band, DeploymentView, DeviceView } from "../chain";
import { cpu, h, link, mib, replaceKeepingFocus, short, table } from "../dom";
import type { AppContext, Page } from "./page";

const bandText = (b: Band) =>
  `CPU ${cpu(b.cpuMinMillicores)}–${cpu(b.cpuMaxMillicores)}, memory ${mib(b.memoryMinMiB)}–${mib(b.memoryMaxMiB)}`;

export function appsPage(ctx: AppContext): Page {
  const lede = h("p", { class: "lede" }, "Reading the chain…");
  const region = h("div", { class: "region" });
  let data: { apps: AppView[]; deployments: DeploymentView[]; devices: DeviceView[] } | undefined;

  const redraw = () => {
    if (data === undefined) return;
    const endpoint = new Map(data.devices.map((d) => [d.deviceId, d.endpoint]));
    lede.textContent = `${data.apps.length} app(s), ${data.deployments.length} deployment(s), read from the chain at block ${ctx.head.number}.`;
    const deployments = table(
      "Deployments",
      [
        "Deployment",
        "App",
        "Version",
        "Generation",
        "Replicas wanted",
        "Replicas live",
        "Active",
        "Required labels",
        "Placements (device, endpoint)",
      ],
      data.deployments.map((d) => ({
        attrs: { "data-deployment": String(d.deploymentId) },
        cells: [
          `#${d.deploymentId}`,
          d.appName,
          `v${d.version}`,
          String(d.generation),
          h("span", { "data-field": "wanted" }, String(d.replicas)),
          h("span", { "data-field": "live" }, String(d.liveReplicas)),
          d.active ? "yes" : "stopped",
          d.requiredLabels.join(", ") || "—",
          d.live.length === 0
            ? "—"
            : h(
                "ul",
                { class: "plain" },
                d.live.map((p) =>
                  h(
                    "li",
                    {},
                    `placement ${p.placementId} (${p.state}) on `,
                    link(`#/device/${p.deviceId}`, `device ${p.deviceId}`),
                    endpoint.get(p.deviceId)
                      ? h("code", { class: "wrap" }, ` ${endpoint.get(p.deviceId)}`)
                      : "",
                  ),
                ),
              ),
        ],
      })),
      { empty: "No deployment yet.", id: "deployments" },
    );
    const apps = data.apps.map((a) =>
      h(
        "section",
        { class: "app", "aria-labelledby": `app-${a.appId}` },
        h(
          "h3",
          { id: `app-${a.appId}` },
          `${a.name} `,
          h("small", {}, `app ${a.appId}, owner `, h("code", { title: a.owner }, short(a.owner))),
        ),
        table(
          `Versions of ${a.name}`,
          ["Version", "Published", "Manifest CID", "Images (platform: CID)", "Band", "Deprecated"],
          a.versions.map((v) => ({
            cells: [
              `v${v.version}`,
              new Date(v.publishedAt * 1000).toISOString().slice(0, 19).replace("T", " "),
              h("code", { class: "wrap" }, v.manifestCid),
              h(
                "ul",
                { class: "plain" },
                v.platforms.map((p, i) =>
                  h("li", {}, `${p}: `, h("code", { class: "wrap" }, v.imageCids[i] ?? "")),
                ),
              ),
              bandText(v.band),
              v.deprecated ? "yes" : "no",
            ],
          })),
        ),
      ),
    );
    replaceKeepingFocus(
      region,
      deployments,
      h("h2", { class: "sub" }, "Apps"),
      ...(apps.length ? apps : [h("p", {}, "No app is registered yet.")]),
    );
  };
  return {
    title: "Apps and deployments",
    mount(main) {
      main.replaceChildren(h("h2", { tabindex: -1 }, "Apps and deployments"), lede, region);
    },
    async refresh() {
      const apps = await ctx.chain.apps();
      const names = new Map(apps.map((a) => [a.appId, a.name]));
      const [deployments, devices] = await Promise.all([
        ctx.chain.deployments(ctx.head.number, names),
        ctx.chain.devices(ctx.head.number),
      ]);
      data = { apps, deployments, devices };
      redraw();
    },
    redraw: () => undefined,
  };
}
