/**
 * The auditor's view: the timeline of placements rebuilt from the chain alone (events for every
 * transition, views for states that are derived rather than recorded, such as a placement whose
 * device expired before anyone finalized it).
 */
import { task, types } from "hardhat/config";
import type { EventLog } from "ethers";
import { shoalContext } from "./lib/context";
import { fail, table } from "./lib/output";
import { buildTimeline, PLACEMENT_EVENTS, timelineJson, type TimelineRow } from "./lib/timeline";

export type { TimelineRow };

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

    if (args.fromBlock !== undefined) {
      // ethers reads a negative block as "that many before the head": refuse it rather than guess.
      const head = await hre.ethers.provider.getBlockNumber();
      if (args.fromBlock < 0 || args.fromBlock > head)
        fail(`--from-block ${args.fromBlock}: give a block from 0 to the chain's head, ${head}`);
    }
    const fromBlock = args.fromBlock ?? ctx.deployment.contracts.PlacementRegistry.blockNumber;
    const logs = (
      await Promise.all(
        PLACEMENT_EVENTS.map((name) =>
          ctx.placements.queryFilter(ctx.placements.getEvent(name as "PlacementClaimed"), fromBlock),
        ),
      )
    ).flat() as unknown as EventLog[];

    const times = new Map<number, string>();
    // For one device or deployment, read every placement's state in pages from a cursor first: one
    // call per 100 placements, O(n) for a whole history; otherwise one placementState() per placement.
    const states = new Map<number, number>();
    if (args.device !== undefined || args.deployment !== undefined) {
      let cursor = 0n;
      do {
        const [page, next] =
          args.device !== undefined
            ? await ctx.placements.placementsOfDeviceFrom(args.device, cursor, 100)
            : await ctx.placements.placementsOfDeploymentFrom(args.deployment, cursor, 100);
        for (const p of page) states.set(Number(p.placementId), Number(p.state));
        cursor = next;
      } while (cursor !== 0n);
    }
    const timeline = await buildTimeline(
      logs,
      { placement: args.placement, deployment: args.deployment, device: args.device, deployments },
      {
        async timeOf(block) {
          if (!times.has(block)) {
            const { timestamp } = (await hre.ethers.provider.getBlock(block))!;
            times.set(block, new Date(timestamp * 1000).toISOString());
          }
          return times.get(block)!;
        },
        stateOf: async (placementId) =>
          states.get(placementId) ?? Number(await ctx.placements.placementState(placementId)),
      },
    );

    if (args.json) {
      process.stdout.write(timelineJson(timeline));
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
