/**
 * The placement timeline from chain data, pure: `placement:history` and the console (in the browser)
 * both build their rows here, so the console's export is the task's `--json` byte for byte. No
 * Node.js, Hardhat or ethers imports: the logs, block times and placement states come in through
 * the caller's functions.
 */
// Deep paths on purpose: the console bundles this file for the browser, and the public entry point
// (workers/src/index.ts) would pull Node.js services and adapters into that bundle. Both are pure.
// eslint-disable-next-line no-restricted-imports
import { FAILURE_CODES, PLACEMENT_STATES } from "../../workers/src/domain/chain-enums";
// eslint-disable-next-line no-restricted-imports
import { placementTransition } from "../../workers/src/domain/placement";

export interface TimelineRow {
  time: string;
  block: number;
  tx: string;
  logIndex: number;
  event: string;
  placementId: number;
  deploymentId: number;
  deviceId: number;
  /** The placement's state after this row. */
  state: string;
  reason: string;
}

/** The PlacementRegistry events the timeline is made of. */
export const PLACEMENT_EVENTS = [
  "PlacementClaimed",
  "PlacementConfirmed",
  "PlacementReleased",
  "PlacementFailed",
  "PlacementExpired",
] as const;

/** What the timeline reads of a log: ethers' EventLog has these fields (args by name). */
export interface PlacementLog {
  blockNumber: number;
  transactionHash: string;
  index: number;
  eventName: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- ethers' Result: fields by event
  args: any;
}

/** Which rows to keep: every given field must match (an app is given as its deployment ids). */
export interface TimelineFilter {
  placement?: number;
  deployment?: number;
  device?: number;
  deployments?: ReadonlySet<number>;
}

export interface TimelineSources {
  /** ISO time of a block. */
  timeOf(block: number): Promise<string>;
  /** `placementState(id)` as read now (the enum's index). */
  stateOf(placementId: number): Promise<number>;
}

export function byChainOrder(
  a: Pick<PlacementLog, "blockNumber" | "index">,
  b: Pick<PlacementLog, "blockNumber" | "index">,
): number {
  return a.blockNumber - b.blockNumber || a.index - b.index;
}

/** The state a placement event leaves its placement in, and the row's reason text. */
export function describePlacementEvent(log: Pick<PlacementLog, "eventName" | "args">): {
  state: string;
  reason: string;
} {
  const a = log.args;
  switch (log.eventName) {
    case "PlacementClaimed":
      return {
        state: "Claimed",
        reason: `app ${a.appId} v${a.version}, ${a.band.cpuMinMillicores}m/${a.band.memoryMinMiB}MiB reserved`,
      };
    case "PlacementConfirmed":
      return { state: "Running", reason: "" };
    case "PlacementReleased": {
      // Released whatever the reason (Superseded included), as the chain reads it afterwards: the one
      // transition of workers/src/domain/placement.ts, so no derived row repeats a recorded one.
      const t = placementTransition(log.eventName, { reason: a.reason })!;
      return { state: t.state, reason: `${t.releaseReason} by ${a.releasedBy}` };
    }
    case "PlacementFailed":
      return { state: "Failed", reason: FAILURE_CODES[Number(a.code)] };
    case "PlacementExpired":
      return {
        state: "Expired",
        reason: `device generation ${a.deviceGeneration} expired at block ${a.expiredBlock}`,
      };
    default:
      return { state: "?", reason: log.eventName };
  }
}

/**
 * The timeline: one row per event in chain order (the logs are sorted in place), then a "(derived)"
 * row for each placement whose state the chain derives without an event yet (a stale device's
 * placements before finalizeExpired, a superseded claim before its release), read from the view.
 */
export async function buildTimeline(
  logs: PlacementLog[],
  filter: TimelineFilter,
  sources: TimelineSources,
): Promise<TimelineRow[]> {
  const keep = (p: number, dep: number, dev: number) =>
    (filter.placement === undefined || p === filter.placement) &&
    (filter.deployment === undefined || dep === filter.deployment) &&
    (filter.device === undefined || dev === filter.device) &&
    (filter.deployments === undefined || filter.deployments.has(dep));

  const rows: TimelineRow[] = [];
  for (const log of logs.sort(byChainOrder)) {
    const a = log.args;
    const [placementId, deploymentId, deviceId] = [
      Number(a.placementId),
      Number(a.deploymentId),
      Number(a.deviceId),
    ];
    if (!keep(placementId, deploymentId, deviceId)) continue;
    const { state, reason } = describePlacementEvent(log);
    rows.push({
      time: await sources.timeOf(log.blockNumber),
      block: log.blockNumber,
      tx: log.transactionHash,
      logIndex: log.index,
      event: log.eventName,
      placementId,
      deploymentId,
      deviceId,
      state,
      reason,
    });
  }

  const last = new Map<number, TimelineRow>();
  for (const row of rows) last.set(row.placementId, row);
  const derived: TimelineRow[] = [];
  for (const [placementId, row] of last) {
    const state = PLACEMENT_STATES[await sources.stateOf(placementId)];
    if (state !== row.state) {
      derived.push({
        ...row,
        time: "",
        block: 0,
        tx: "",
        logIndex: 0,
        event: "(derived)",
        state,
        reason:
          state === "Expired"
            ? "device missed its heartbeat TTL; finalizeExpired() records it"
            : state === "Superseded"
              ? "deployment rolled to a newer version"
              : "read from placementState()",
      });
    }
  }
  return [...rows, ...derived];
}

/** The timeline as `placement:history --json` prints it (console.log adds the final newline). */
export function timelineJson(rows: readonly TimelineRow[]): string {
  return `${JSON.stringify(rows, null, 2)}\n`;
}
