/**
 * Auditor tasks of the anchored resource log (issue 16): every epoch a device anchored on chain
 * (ResourceLog events), its records fetched by CID from Kubo, shown (`resources:history`) or
 * checked against the anchors and the hash chain (`resources:verify`).
 */
import { task, types } from "hardhat/config";
import {
  createEthersResourceAnchor,
  createKuboContentStore,
  verifyResourceLog,
  type EpochAnchor,
  type EpochDocument,
} from "../workers/src";
import { shoalContext, type ShoalContext } from "./lib/context";
import { fail, orFail, table } from "./lib/output";

const DEFAULT_KUBO = process.env.SHOAL_KUBO_URL ?? "http://127.0.0.1:5401";
/** An epoch of 10,000 records is about 5 MB; more is not an epoch the worker wrote. */
const MAX_EPOCH_BYTES = 16 * 1024 * 1024;

function wholeNumber(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > 2 ** 32 - 1)
    fail(`--${name} "${value}" is not allowed; give a whole number from ${min} to ${2 ** 32 - 1}`);
  return Number(value);
}

async function deviceAnchors(ctx: ShoalContext, hre: { ethers: { provider: unknown } }, deviceId: number) {
  const contract = ctx.deployment.contracts.ResourceLog;
  if (contract === undefined || ctx.resourceLog === undefined)
    fail(
      "this deployment has no ResourceLog contract; redeploy with scripts/deploy.ts to anchor resource logs",
    );
  const count = Number(await ctx.devices.deviceCount());
  if (deviceId > count)
    fail(`--device ${deviceId}: ${count === 0 ? "no device is enrolled yet" : `devices are 1..${count}`}`);
  const anchor = createEthersResourceAnchor({
    provider: hre.ethers.provider as Parameters<typeof createEthersResourceAnchor>[0]["provider"],
    contract,
  });
  return orFail("reading the anchors", () => anchor.anchors(deviceId));
}

/** Each epoch's document by its anchor's CID, or the error that kept it away. */
async function fetchEpochs(kubo: string, anchors: readonly EpochAnchor[]): Promise<Map<number, unknown>> {
  const store = createKuboContentStore({ url: kubo });
  const documents = new Map<number, unknown>();
  for (const a of anchors) {
    try {
      const chunks: Uint8Array[] = [];
      for await (const chunk of store.cat(a.cid, {
        maxBytes: MAX_EPOCH_BYTES,
        signal: AbortSignal.timeout(15_000),
      }))
        chunks.push(chunk);
      documents.set(a.epoch, JSON.parse(Buffer.concat(chunks).toString("utf8")));
    } catch (error) {
      documents.set(a.epoch, error instanceof Error ? error : new Error(String(error)));
    }
  }
  return documents;
}

function range(anchors: readonly EpochAnchor[], from?: number, to?: number): EpochAnchor[] {
  return anchors.filter((a) => a.epoch >= (from ?? 0) && a.epoch <= (to ?? Infinity));
}

/** The options both tasks take, checked before anything is read. */
function selection(args: { device: string; from?: string; to?: string }) {
  const deviceId = wholeNumber("device", args.device, 1)!;
  const from = wholeNumber("from", args.from, 0);
  const to = wholeNumber("to", args.to, 0);
  if (from !== undefined && to !== undefined && from > to)
    fail(`--from ${from} is after --to ${to}; give from <= to`);
  return { deviceId, from, to };
}

/** A resources task with the options both take. */
const resourcesTask = (name: string, description: string, json: string) =>
  task(name, description)
    .addParam("device", "Device id", undefined, types.string)
    .addOptionalParam("from", "First epoch (default 0)", undefined, types.string)
    .addOptionalParam("to", "Last epoch (default the latest anchored)", undefined, types.string)
    .addOptionalParam("kubo", "Kubo RPC API URL (env SHOAL_KUBO_URL)", DEFAULT_KUBO)
    .addFlag("json", json);

resourcesTask(
  "resources:history",
  "Shows a device's anchored resource decisions (fetched by CID from Kubo)",
  "Print JSON (one object per epoch with its records) instead of a table",
).setAction(async (args, hre) => {
  const { deviceId, from, to } = selection(args);
  const ctx = await shoalContext(hre);
  const anchors = range(await deviceAnchors(ctx, hre, deviceId), from, to);
  const documents = await fetchEpochs(args.kubo, anchors);
  if (args.json) {
    const out = anchors.map((a) => {
      const doc = documents.get(a.epoch);
      return doc instanceof Error
        ? { ...a, error: doc.message, records: [] }
        : { ...a, records: (doc as EpochDocument).entries ?? [] };
    });
    console.log(JSON.stringify(out, null, 2));
    return;
  }
  const rows: string[][] = [];
  for (const a of anchors) {
    const doc = documents.get(a.epoch);
    if (doc instanceof Error) {
      rows.push([
        String(a.epoch),
        "",
        "",
        "",
        "",
        "",
        `records not fetchable (CID ${a.cid}): ${doc.message}`,
      ]);
      continue;
    }
    for (const r of (doc as EpochDocument).entries ?? [])
      rows.push([
        String(a.epoch),
        String(r.seq),
        r.at,
        r.placementId,
        r.resource,
        `${r.from} -> ${r.to}`,
        `${r.reason} (${r.metric} ${r.value} vs ${r.threshold})`,
      ]);
  }
  console.log(`device ${deviceId}: ${anchors.length} anchored epochs`);
  console.log(table(["epoch", "seq", "at", "placement", "resource", "change", "reason"], rows));
});

resourcesTask(
  "resources:verify",
  "Checks a device's anchored resource log: every record against the anchors and the hash chain",
  "Print the findings as JSON",
).setAction(async (args, hre) => {
  const { deviceId, from, to } = selection(args);
  const ctx = await shoalContext(hre);
  const anchors = await deviceAnchors(ctx, hre, deviceId);
  const documents = await fetchEpochs(args.kubo, range(anchors, from, to));
  const result = verifyResourceLog({ deviceId: String(deviceId), anchors, documents, from, to });
  if (args.json) console.log(JSON.stringify(result, null, 2));
  else {
    for (const f of result.findings) console.log(`${f.kind}: ${f.message}`);
    console.log(
      `device ${deviceId}: ${result.epochsChecked} epochs, ${result.recordsChecked} records checked; ` +
        (result.findings.length === 0 ? "the log verifies" : `${result.findings.length} problems`),
    );
  }
  if (result.findings.length > 0) process.exitCode = 1;
});
