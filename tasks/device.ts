/** Device owner tasks: stake and enroll a device, heartbeat, exit, withdraw, list. */
import { task, types } from "hardhat/config";
import { formatUnits, parseUnits } from "ethers";
import {
  createKuboContentStore,
  preferredAddress,
  labelsProblem,
  MEMORY_MIB_MIN,
  PLATFORMS,
  splitLabels,
  tryParseCpuMillicores,
  tryParseMemoryMiB,
} from "../workers/src";
import { shoalContext, type ShoalContext } from "./lib/context";
import { fail, orFail, table } from "./lib/output";

const STATUS = ["None", "Active", "Exiting", "Exited"];
/** Capacities are uint32 on chain. */
const MAX_UINT32 = 2 ** 32 - 1;
/** DeviceRegistry.MAX_ENDPOINT_LENGTH. */
const MAX_ENDPOINT_BYTES = 256;

async function checkDevice(ctx: ShoalContext, deviceId: number): Promise<void> {
  const count = Number(await ctx.devices.deviceCount());
  if (deviceId < 1 || deviceId > count) {
    fail(`--device ${deviceId}: ${count === 0 ? "no device is enrolled yet" : `devices are 1..${count}`}`);
  }
}

async function sendTx(what: string, tx: () => Promise<{ wait(): Promise<unknown> }>) {
  const response = await orFail(what, tx);
  return (await orFail(what, () => response.wait())) as {
    hash: string;
    gasUsed: bigint;
    logs: Array<{ topics: string[]; data: string }>;
  };
}

task("device:enroll", "Stakes tokens and enrolls a device (approve + enroll in one go)")
  .addParam("stake", "Stake in tokens, e.g. 150 or 150.5")
  .addParam("cpu", 'CPU capacity: cores ("2", "0.5") or millicores ("500m")')
  .addParam("memory", 'Memory capacity: "512Mi", "1Gi"')
  .addOptionalParam("platform", "Platform of the device's images", "linux/amd64")
  .addOptionalParam("labels", "Labels, comma separated key=value (at most 8)", "")
  .addOptionalParam(
    "endpoint",
    "The device's IPFS peer address, a multiaddr with /p2p/<peer id> (default: read from the --kubo node)",
  )
  .addOptionalParam(
    "kubo",
    "The device's Kubo RPC API, read for the default endpoint (env SHOAL_KUBO_URL)",
    process.env.SHOAL_KUBO_URL ?? "http://127.0.0.1:5401",
  )
  .addOptionalParam("operator", "Key the device's worker signs with (default: the signer)")
  .addOptionalParam("account", "Signer (the device owner): account index or address", "0")
  .setAction(async (args, hre) => {
    // Every value is checked before the first transaction (approve), so bad input changes nothing.
    const cpu = tryParseCpuMillicores(args.cpu);
    if (!cpu.ok) fail(`--cpu "${args.cpu}" ${cpu.problem}; ${cpu.allowed}`);
    if (cpu.value < 1 || cpu.value > MAX_UINT32)
      fail(`--cpu "${args.cpu}" is out of range; give from 1m to ${MAX_UINT32}m`);
    const memory = tryParseMemoryMiB(args.memory);
    if (!memory.ok) fail(`--memory "${args.memory}" ${memory.problem}; ${memory.allowed}`);
    if (memory.value < MEMORY_MIB_MIN || memory.value > MAX_UINT32)
      fail(`--memory "${args.memory}" is out of range; give from ${MEMORY_MIB_MIN}Mi to ${MAX_UINT32}Mi`);
    let stake: bigint;
    try {
      stake = parseUnits(args.stake, 18);
    } catch {
      fail(`--stake "${args.stake}": give an amount of tokens such as 150 or 150.5`);
    }
    if (stake <= 0n) fail(`--stake "${args.stake}": give a positive amount of tokens`);
    if (!PLATFORMS.includes(args.platform))
      fail(
        `--platform "${args.platform}" is not a platform a manifest can name; use one of ${PLATFORMS.join(", ")}`,
      );
    const labels = splitLabels(args.labels as string);
    const labelProblem = labelsProblem(labels);
    if (labelProblem) fail(`--labels: ${labelProblem}`);
    if (args.endpoint === undefined) {
      const self = await createKuboContentStore({ url: args.kubo })
        .identity()
        .catch(() => undefined);
      args.endpoint = self && preferredAddress(self);
      if (args.endpoint === undefined)
        fail(
          `--endpoint is missing and the Kubo node at --kubo ${args.kubo} could not be read (or announces no TCP address); give the device's IPFS address like /ip4/192.0.2.10/tcp/4001/p2p/12D3KooW...`,
        );
      console.log(`endpoint: ${args.endpoint} (the Kubo node at ${args.kubo})`);
    }
    const endpointBytes = Buffer.byteLength(args.endpoint as string);
    if (!/^\/\S+$/.test(args.endpoint) || endpointBytes > MAX_ENDPOINT_BYTES)
      fail(
        `--endpoint "${args.endpoint}" is not a multiaddr; give the device's IPFS address like /ip4/192.0.2.10/tcp/4001/p2p/12D3KooW... (at most ${MAX_ENDPOINT_BYTES} bytes)`,
      );

    const ctx = await shoalContext(hre, args.account);
    const operator = args.operator ?? ctx.signerAddress;
    if (!hre.ethers.isAddress(operator) || BigInt(operator) === 0n)
      fail(`--operator "${operator}": give the address of the key the worker signs with`);
    const { minStake } = await ctx.devices.parameters();
    if (stake < minStake)
      fail(`--stake ${args.stake}: the minimum stake is ${formatUnits(minStake, 18)} tokens`);
    const balance = await ctx.token.balanceOf(ctx.signerAddress);
    if (balance < stake)
      fail(`--stake ${args.stake}: ${ctx.signerAddress} holds only ${formatUnits(balance, 18)} tokens`);

    const registry = await ctx.devices.getAddress();
    if ((await ctx.token.allowance(ctx.signerAddress, registry)) < stake) {
      const approval = await sendTx("approving the stake", () => ctx.token.approve(registry, stake));
      console.log(
        `approved ${args.stake} tokens for the DeviceRegistry (tx ${approval.hash}, gas ${approval.gasUsed})`,
      );
    }
    const receipt = await sendTx("enrolling the device", () =>
      ctx.devices.enroll(operator, args.platform, cpu.value, memory.value, labels, args.endpoint, stake),
    );
    const event = receipt.logs
      .map((log) => ctx.devices.interface.parseLog(log))
      .find((parsed) => parsed?.name === "DeviceEnrolled");
    const deviceId = Number(event!.args.deviceId);
    console.log(
      `device ${deviceId} enrolled: ${args.platform}, ${cpu.value}m CPU, ${memory.value} MiB, ` +
        `stake ${args.stake}, operator ${operator} (tx ${receipt.hash}, gas ${receipt.gasUsed})`,
    );
    return { deviceId, txHash: receipt.hash, gasUsed: receipt.gasUsed.toString() };
  });

for (const [name, description, method] of [
  ["device:heartbeat", "Sends the device's liveness heartbeat", "heartbeat"],
  [
    "device:exit",
    "Starts the device's exit; the stake unbonds (and stays slashable) for the unbonding delay",
    "requestExit",
  ],
  [
    "device:withdraw",
    "Completes the exit after the unbonding delay and returns the remaining stake",
    "completeExit",
  ],
] as const) {
  task(name, description)
    .addParam("device", "Device id", undefined, types.int)
    .addOptionalParam("account", "Signer (owner or operator): account index or address", "0")
    .setAction(async (args, hre) => {
      const ctx = await shoalContext(hre, args.account);
      await checkDevice(ctx, args.device);
      const receipt = await sendTx(`${name} for device ${args.device}`, () =>
        ctx.devices[method](args.device),
      );
      const device = await ctx.devices.device(args.device);
      const until =
        method === "requestExit"
          ? `; withdrawable at ${new Date(Number(device.withdrawableAt) * 1000).toISOString()}`
          : "";
      console.log(
        `device ${args.device}: ${STATUS[Number(device.status)]}${until} (tx ${receipt.hash}, gas ${receipt.gasUsed})`,
      );
      return { deviceId: args.device, status: STATUS[Number(device.status)], txHash: receipt.hash };
    });
}

task("device:list", "Lists enrolled devices with stake, capacity, usage, liveness and reputation")
  .addFlag("json", "Print JSON instead of a table")
  .setAction(async (args, hre) => {
    const ctx = await shoalContext(hre);
    const { heartbeatTtl } = await ctx.devices.parameters();
    const now = (await hre.ethers.provider.getBlock("latest"))!.timestamp;
    const enrolled = await ctx.devices.queryFilter(
      ctx.devices.filters.DeviceEnrolled(),
      ctx.deployment.contracts.DeviceRegistry.blockNumber,
    );
    const labelsOf = new Map(enrolled.map((e) => [Number(e.args.deviceId), [...e.args.labels]]));
    const devices = [];
    for (let id = 1; id <= Number(await ctx.devices.deviceCount()); id++) {
      const d = await ctx.devices.device(id);
      const usage = await ctx.placements.deviceUsage(id);
      const rep = await ctx.devices.reputation(id);
      devices.push({
        deviceId: id,
        owner: d.owner,
        operator: d.operator,
        status: STATUS[Number(d.status)],
        platform: d.platform,
        labels: labelsOf.get(id) ?? [],
        stake: formatUnits(d.stake, 18),
        cpuMillicores: Number(d.cpuMillicores),
        memoryMiB: Number(d.memoryMiB),
        cpuReservedMillicores: Number(usage.cpuReservedMillicores),
        memoryReservedMiB: Number(usage.memoryReservedMiB),
        livePlacements: Number(usage.livePlacements),
        lastHeartbeatAgeS: now - Number(d.lastHeartbeat),
        stale: now - Number(d.lastHeartbeat) > Number(heartbeatTtl),
        completed: Number(rep.completed),
        failed: Number(rep.failed),
        expired: Number(rep.expired),
      });
    }
    if (args.json) {
      console.log(JSON.stringify(devices, null, 2));
      return devices;
    }
    console.log(
      table(
        [
          "device",
          "status",
          "platform",
          "labels",
          "stake",
          "cpu used/cap (m)",
          "mem used/cap (MiB)",
          "live",
          "heartbeat",
          "done/failed/expired",
        ],
        devices.map((d) => [
          String(d.deviceId),
          d.status,
          d.platform,
          d.labels.join(","),
          d.stake,
          `${d.cpuReservedMillicores}/${d.cpuMillicores}`,
          `${d.memoryReservedMiB}/${d.memoryMiB}`,
          String(d.livePlacements),
          `${d.lastHeartbeatAgeS}s ago${d.stale ? " (stale)" : ""}`,
          `${d.completed}/${d.failed}/${d.expired}`,
        ]),
      ),
    );
    return devices;
  });
