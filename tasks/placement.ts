/**
 * The auditor's view: the timeline of placements rebuilt from the chain alone (events for every
 * transition, views for states that are derived rather than recorded, such as a placement whose
 * device expired before anyone finalized it).
 */
import { task, types } from "hardhat/config";
import type { EventLog, Log } from "ethers";
import { FAILURE_CODES, PLACEMENT_STATES, placementTransition } from "../workers/src";
import { shoalContext } from "./lib/context";
import { fail, table } from "./lib/output";

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

const EVENTS = [
  "PlacementClaimed",
  "PlacementConfirmed",
  "PlacementReleased",
  "PlacementFailed",
  "PlacementExpired",
];

task("placement:history", "Prints the placement timeline rebuilt from chain events and views")
  .addOptionalParam("app", "Only placements of this app's deployments")
  .addOptionalParam("deployment", "Only placements of this deployment", undefined, types.int)
  .addOptionalParam("device", "Only placements of this device", undefined, types.int)
  .addOptionalParam("placement", "Only this placement", undefined, types.int)
  .addOptionalParam(
    "fromBlock",
    "First block to read (default: the registry's deployment block)",
    undefined,
    types.int,
  )
  .addFlag("json", "Print JSON instead of a table")
  .setAction(async (args, hre) => {
    const ctx = await shoalContext(hre);
    const given = ["app", "deployment", "device", "placement"].filter((k) => args[k] !== undefined);
    if (given.length > 1)
      fail(
        `give at most one of --app, --deployment, --device, --placement (got ${given.map((k) => `--${k}`).join(", ")})`,
      );

    let deployments: Set<number> | undefined;
    if (args.app !== undefined) {
      const appId = Number(await ctx.apps.appIdOf(args.app));
      if (appId === 0) fail(`--app: no app named "${args.app}" is registered`);
      deployments = new Set();
      for (let id = 1; id <= Number(await ctx.apps.deploymentCount()); id++) {
        if (Number((await ctx.apps.deploymentSummary(id)).appId) === appId) deployments.add(id);
      }
    }
    if (args.placement !== undefined) {
      if (Number(await ctx.placements.placementState(args.placement)) === 0) {
        fail(`--placement ${args.placement}: no such placement on this chain`);
      }
    }

    const fromBlock = args.fromBlock ?? ctx.deployment.contracts.PlacementRegistry.blockNumber;
    const logs = (
      await Promise.all(
        EVENTS.map((name) =>
          ctx.placements.queryFilter(ctx.placements.getEvent(name as "PlacementClaimed"), fromBlock),
        ),
      )
    ).flat() as unknown as EventLog[];
    const keep = (p: number, dep: number, dev: number) =>
      (args.placement === undefined || p === args.placement) &&
      (args.deployment === undefined || dep === args.deployment) &&
      (args.device === undefined || dev === args.device) &&
      (deployments === undefined || deployments.has(dep));

    const times = new Map<number, string>();
    const timeOf = async (block: number) => {
      if (!times.has(block)) {
        const { timestamp } = (await hre.ethers.provider.getBlock(block))!;
        times.set(block, new Date(timestamp * 1000).toISOString());
      }
      return times.get(block)!;
    };

    const rows: TimelineRow[] = [];
    for (const log of logs.sort(byChainOrder)) {
      const a = log.args;
      const [placementId, deploymentId, deviceId] = [
        Number(a.placementId),
        Number(a.deploymentId),
        Number(a.deviceId),
      ];
      if (!keep(placementId, deploymentId, deviceId)) continue;
      const { state, reason } = describe(log);
      rows.push({
        time: await timeOf(log.blockNumber),
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

    // States the chain derives without an event yet (a stale device's placements before
    // finalizeExpired, a superseded claim before its release): read them from the view.
    const last = new Map<number, TimelineRow>();
    for (const row of rows) last.set(row.placementId, row);
    const derived: TimelineRow[] = [];
    for (const [placementId, row] of last) {
      const state = PLACEMENT_STATES[Number(await ctx.placements.placementState(placementId))];
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
    const timeline = [...rows, ...derived];

    if (args.json) {
      console.log(JSON.stringify(timeline, null, 2));
      return timeline;
    }
    console.log(
      table(
        ["time", "block", "tx", "event", "placement", "deployment", "device", "state", "reason"],
        timeline.map((r) => [
          r.time,
          r.block ? String(r.block) : "",
          r.tx ? `${r.tx.slice(0, 10)}…` : "",
          r.event,
          String(r.placementId),
          String(r.deploymentId),
          String(r.deviceId),
          r.state,
          r.reason,
        ]),
      ),
    );
    return timeline;
  });

function byChainOrder(a: Log, b: Log): number {
  return a.blockNumber - b.blockNumber || a.index - b.index;
}

function describe(log: EventLog): { state: string; reason: string } {
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
      // Released whatever the reason (Superseded included), as the chain reads it afterwards: the
      // one transition of workers/src/domain/placement.ts, so no derived row repeats a recorded one.
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
