/**
 * The fleet view in a terminal: a compact table redrawn in place on a TTY (plain ANSI), or one status
 * line every few seconds when stdout is not a terminal (logs, CI).
 */
import { isLivePlacement, shortPlacementId } from "../../workers/src";
import type { FleetState } from "./fleet";
import type { FleetSnapshot } from "./observe";

const bold = (s: string, tty: boolean) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const color = (s: string, code: number, tty: boolean) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);

function stateColor(state: string, tty: boolean): string {
  const code: Record<string, number> = {
    Running: 32,
    Claimed: 33,
    Failed: 31,
    Expired: 31,
    Released: 90,
    Superseded: 90,
    online: 32,
    offline: 31,
  };
  return color(state, code[state] ?? 0, tty);
}

function pad(cells: string[][], tty: boolean): string[] {
  // eslint-disable-next-line no-control-regex
  const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "").length;
  const widths = cells[0].map((_, i) => Math.max(...cells.map((row) => visible(row[i] ?? ""))));
  return cells.map((row, r) => {
    const line = row.map((c, i) => c + " ".repeat(widths[i] - visible(c))).join("  ");
    return r === 0 ? bold(line, tty) : line;
  });
}

const fmt = (n: number | undefined, unit = "") =>
  n === undefined ? "-" : `${n < 10 && !Number.isInteger(n) ? n.toFixed(1) : Math.round(n)}${unit}`;

export function appName(state: FleetState, deploymentId: number): string {
  const entry = Object.entries(state.demo).find(([, id]) => id === deploymentId);
  return entry ? entry[0] : `deployment ${deploymentId}`;
}

export function render(
  state: FleetState,
  snap: FleetSnapshot,
  options: { tty: boolean; hint?: string },
): string {
  const { tty } = options;
  const lines: string[] = [];
  const live = [...snap.placements.values()].filter((p) => isLivePlacement(p.state));
  lines.push(
    `${bold("Shoal fleet", tty)}  chain ${state.chainId}  ${state.devices.length} devices  ` +
      `${live.length} live placements  MQTT ${snap.mqttConnected ? "connected" : color("down", 31, tty)}  ` +
      `${snap.eventCount} events (${snap.repeats} repeats dropped)  ${snap.at.toISOString().slice(11, 19)}`,
  );
  lines.push(
    state.isolated
      ? `devices: a host each (namespace, Docker Engine, Kubo node, worker) on ${state.isolated.network.bridge} ${state.isolated.network.subnet}; uplink ${state.isolated.network.gateway}`
      : "devices: shared mode (one Docker Engine and Kubo node for all)",
  );
  lines.push("");

  const deviceRows: string[][] = [
    [
      "device",
      "address",
      "size",
      "labels",
      "worker",
      "stake",
      "heartbeat",
      "cpu used/limits/cap (m)",
      "mem used/limits/cap (MiB)",
    ],
  ];
  const now = snap.chainTime ?? Math.floor(Date.now() / 1000);
  for (const d of [...state.devices].sort((a, b) => a.deviceId - b.deviceId)) {
    const chain = snap.devices.get(d.deviceId);
    const presence = snap.presence.get(d.deviceId);
    const containers = snap.containers.filter((c) => c.deviceId === d.deviceId && c.running);
    const cg = snap.deviceCgroups.get(d.deviceId);
    const cpuCap =
      chain?.cpuMillicores ??
      Math.round(Number(d.profile.cpu.replace(/m$/, "")) * (d.profile.cpu.endsWith("m") ? 1 : 1000));
    const memCap = chain?.memoryMiB;
    const cpuUsed = cg?.cpuUsageMillicores ?? sum(containers.map((c) => c.cpuUsageMillicores));
    const age = chain?.lastHeartbeat ? now - chain.lastHeartbeat.timestamp : undefined;
    deviceRows.push([
      String(d.deviceId),
      // Isolated: the device host's own address; shared: every device is this machine.
      d.host?.address ?? "shared",
      d.profile.name,
      d.profile.labels.filter((l) => !l.startsWith("fleet=")).join(","),
      presence
        ? stateColor(presence.status, tty) + (presence.status === "offline" ? ` (${presence.reason})` : "")
        : "-",
      chain ? formatStake(chain.stake) : "-",
      age === undefined ? "-" : `${age}s ago${age > state.heartbeatTtlS ? color(" stale", 31, tty) : ""}`,
      `${fmt(cpuUsed)}/${sum(containers.map((c) => c.cpuLimitMillicores)) ?? 0}/${cg?.cpuCapMillicores ?? cpuCap}${cg?.cpuCapMillicores ? " cg" : ""}`,
      `${fmt(sum(containers.map((c) => c.memoryUsageMiB)))}/${sum(containers.map((c) => c.memoryLimitMiB)) ?? 0}/${cg?.memoryCapMiB ?? memCap ?? "-"}${cg?.memoryCapMiB ? " cg" : ""}`,
    ]);
  }
  lines.push(...pad(deviceRows, tty));
  lines.push("");

  const placementRows: string[][] = [
    [
      "placement",
      "app",
      "ver",
      "device",
      "state",
      "container",
      "cpu used/limit (m)",
      "mem used/limit (MiB)",
      "last resource decision",
    ],
  ];
  const containersOf = new Map<string, (typeof snap.containers)[number][]>();
  for (const c of snap.containers)
    containersOf.set(c.placementId, [...(containersOf.get(c.placementId) ?? []), c]);
  const shown = [...snap.placements.values()]
    .filter((p) => isLivePlacement(p.state) || containersOf.has(String(p.placementId)))
    .sort((a, b) => a.deviceId - b.deviceId || (BigInt(a.placementId) < BigInt(b.placementId) ? -1 : 1));
  for (const p of shown) {
    const cs = containersOf.get(String(p.placementId)) ?? [];
    const c = cs[0];
    const decision = [...snap.decisions].reverse().find((d) => d.placementId === String(p.placementId));
    placementRows.push([
      short(p.placementId),
      appName(state, p.deploymentId),
      String(p.version),
      String(p.deviceId),
      stateColor(p.state, tty),
      c
        ? `${c.running ? "running" : "stopped"}${cs.length > 1 ? color(` x${cs.length}`, 31, tty) : ""}`
        : "-",
      c ? `${fmt(c.cpuUsageMillicores)}/${c.cpuLimitMillicores}` : "-",
      c ? `${fmt(c.memoryUsageMiB)}/${c.memoryLimitMiB}` : "-",
      decision
        ? `${decision.resource} ${decision.from}->${decision.to} ${decision.reason} ${decision.at.slice(11, 19)}`
        : "",
    ]);
  }
  // Containers the chain does not list as live (a dead device's leftovers, a stop under way).
  for (const c of snap.containers) {
    const p = snap.placements.get(c.placementId);
    if (p && (isLivePlacement(p.state) || shown.includes(p))) continue;
    placementRows.push([
      short(c.placementId),
      appName(state, Number(c.deploymentId)),
      c.version,
      String(c.deviceId),
      p ? stateColor(p.state, tty) : "?",
      c.running ? "running" : "stopped",
      `${fmt(c.cpuUsageMillicores)}/${c.cpuLimitMillicores}`,
      `${fmt(c.memoryUsageMiB)}/${c.memoryLimitMiB}`,
      "",
    ]);
  }
  if (placementRows.length === 1)
    placementRows.push(["(no live placement yet)", "", "", "", "", "", "", "", ""]);
  lines.push(...pad(placementRows, tty));
  lines.push("");

  const endpoints = [...snap.endpoints.values()].sort((a, b) =>
    BigInt(a.placementId) < BigInt(b.placementId) ? -1 : 1,
  );
  if (endpoints.length > 0) {
    lines.push(
      "endpoints: " +
        endpoints
          .map(
            (e) =>
              `${e.app} ${e.appVersion} ${e.ports.map((p) => `${p.protocol}://${e.deviceAddress}:${p.hostPort}`).join(",")} (device ${e.deviceId}, placement ${short(e.placementId)})`,
          )
          .join(" | "),
    );
  }
  const deployments = [...snap.deployments.values()].sort((a, b) => a.deploymentId - b.deploymentId);
  if (deployments.length > 0) {
    lines.push(
      "deployments: " +
        deployments
          .map((d) => {
            const n = live.filter((p) => p.deploymentId === d.deploymentId).length;
            return `${d.deploymentId} ${appName(state, d.deploymentId)} v${d.version} ${n}/${d.replicas}${d.active ? "" : " stopped"}`;
          })
          .join(" | "),
    );
  }
  const recent = snap.events
    .filter(
      (e) =>
        (e.contract === "PlacementRegistry" || e.event.startsWith("Device")) && e.event !== "DeviceHeartbeat",
    )
    .slice(-6);
  if (recent.length > 0) {
    lines.push("recent events:");
    for (const e of recent) lines.push(`  block ${e.blockNumber}  ${e.event}  ${describeArgs(e.args)}`);
  }
  if (options.hint) lines.push("", options.hint);
  return lines.join("\n");
}

/** One line for logs: presence, placements by state, deployments' replicas, the sum of CPU limits. */
export function statusLine(state: FleetState, snap: FleetSnapshot): string {
  const online = state.devices.filter((d) => snap.presence.get(d.deviceId)?.status === "online").length;
  const byState = new Map<string, number>();
  for (const p of snap.placements.values()) byState.set(p.state, (byState.get(p.state) ?? 0) + 1);
  const live = [...snap.placements.values()].filter((p) => isLivePlacement(p.state));
  const running = snap.containers.filter((c) => c.running);
  const deployments = [...snap.deployments.values()]
    .sort((a, b) => a.deploymentId - b.deploymentId)
    .map(
      (d) =>
        `${appName(state, d.deploymentId)} ${live.filter((p) => p.deploymentId === d.deploymentId).length}/${d.replicas}`,
    )
    .join(", ");
  return (
    `[fleet ${snap.at.toISOString().slice(11, 19)}] devices ${online}/${state.devices.length} online | ` +
    `placements ${[...byState].map(([s, n]) => `${n} ${s}`).join(", ") || "none"} | ${deployments || "no deployment"} | ` +
    `containers ${running.length} running, cpu limits ${sum(running.map((c) => c.cpuLimitMillicores)) ?? 0}m ` +
    `used ${fmt(sum(running.map((c) => c.cpuUsageMillicores)), "m")}, mem limits ${sum(running.map((c) => c.memoryLimitMiB)) ?? 0}MiB | ` +
    `${snap.eventCount} events`
  );
}

function sum(values: (number | undefined)[]): number | undefined {
  const known = values.filter((v): v is number => v !== undefined);
  return known.length === 0 ? undefined : known.reduce((a, b) => a + b, 0);
}

const short = shortPlacementId;

function formatStake(stake: string): string {
  try {
    const whole = BigInt(stake) / 10n ** 18n;
    const frac = (BigInt(stake) % 10n ** 18n) / 10n ** 16n;
    return frac === 0n ? String(whole) : `${whole}.${String(frac).padStart(2, "0")}`;
  } catch {
    return stake;
  }
}

function describeArgs(args: Record<string, unknown>): string {
  const keys = [
    "placementId",
    "deploymentId",
    "deviceId",
    "version",
    "reason",
    "code",
    "amount",
    "placements",
  ];
  return keys
    .filter((k) => args[k] !== undefined)
    .map((k) =>
      k === "placementId"
        ? `placement ${short(String(args[k]))}`
        : `${k.replace(/Id$/, "")} ${String(args[k])}`,
    )
    .join(", ");
}
