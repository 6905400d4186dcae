/**
 * ChainSource over a JSON-RPC node (ethers v6): an `eth_getLogs` block-range loop over the Shoal
 * contracts. Not `contract.on` listeners: those poll with filters that nodes expire and drop events
 * on long runs, and they know nothing about confirmations, checkpoints or reorgs.
 *
 * Each poll: check that the last delivered block is still on the chain (else walk the remembered
 * hashes back to the common ancestor and report a reorg), then fetch the logs of the next range up
 * to head - confirmations, fetch the headers the range needs, check that logs and headers form one
 * chain that continues the last delivered block, hand the batch to the handler and only then
 * persist the checkpoint.
 */
import path from "node:path";
import { AbiCoder, Interface, getAddress, type InterfaceAbi, type ParamType } from "ethers";
import type { Logger } from "pino";
import {
  AppRegistry__factory,
  DeviceRegistry__factory,
  PlacementRegistry__factory,
  ShoalToken__factory,
} from "../../../typechain-types";
import { readJsonFile, writeJsonFileAtomic } from "../lib/json-file";
import { SHOAL_CONTRACTS } from "../domain/deployment-record";
import { ShoalError, isRetryable } from "../errors";
import { backoffDelay, sleep } from "../lib/supervise";
import type {
  BlockRef,
  ChainBatch,
  ChainBatchHandler,
  ChainEvent,
  ChainSource,
  ChainSourceStatus,
  JsonValue,
  PollOutcome,
  ShoalContractName,
} from "../ports/chain-source";

export class ChainSourceError extends ShoalError {
  override name = "ChainSourceError";
}

const ABIS: Record<ShoalContractName, InterfaceAbi> = {
  AppRegistry: AppRegistry__factory.abi,
  DeviceRegistry: DeviceRegistry__factory.abi,
  PlacementRegistry: PlacementRegistry__factory.abi,
  ShoalToken: ShoalToken__factory.abi,
};

/** The registries a device worker bridges; the token's transfers are not its business. */
export const REGISTRY_CONTRACTS: readonly ShoalContractName[] = SHOAL_CONTRACTS.filter(
  (name) => name !== "ShoalToken",
);

// ---------------------------------------------------------------------------------------------------
// Decoding

/** A log as `eth_getLogs` returns it (hex quantities) or as ethers' `Log` class holds it. */
export interface LogLike {
  address: string;
  topics: readonly string[];
  data: string;
  blockNumber: number | string;
  blockHash: string;
  transactionHash: string;
  /** ethers' `Log.index`. */
  index?: number;
  /** JSON-RPC's `logIndex` (hex). */
  logIndex?: string | number;
}

export interface LogDecoder {
  readonly chainId: number;
  /** Lower-case addresses, for `eth_getLogs`. */
  readonly addresses: readonly string[];
  /** The event, or null when the log is not from a known contract or has an unknown topic. */
  decode(log: LogLike, timestamp: number): ChainEvent | null;
}

type Converter = (value: unknown) => JsonValue;

/**
 * Integers of up to 48 bits become numbers (exact in a double), wider ones decimal strings; the
 * choice follows the ABI type, never the value, so each field has one JSON type.
 */
function converterFor(type: ParamType): Converter {
  if (type.isTuple()) {
    const fields = type.components.map((c, i) => [c.name || String(i), converterFor(c)] as const);
    return (value) => {
      const tuple = value as ArrayLike<unknown>;
      const out: Record<string, JsonValue> = {};
      fields.forEach(([name, convert], i) => (out[name] = convert(tuple[i])));
      return out;
    };
  }
  if (type.isArray()) {
    const child = converterFor(type.arrayChildren);
    return (value) => Array.from(value as ArrayLike<unknown>, child);
  }
  const match = /^u?int(\d*)$/.exec(type.baseType);
  if (match) {
    const bits = match[1] === "" ? 256 : Number(match[1]);
    return bits <= 48 ? (value) => Number(value as bigint) : (value) => (value as bigint).toString();
  }
  // address (checksummed by ethers), bool, string, bytes and bytesN (hex) are JSON already.
  return (value) => value as JsonValue;
}

/** How to decode one event: precomputed once per ABI, looked up by topic0. */
interface EventCodec {
  contract: ShoalContractName;
  address: string;
  event: string;
  /** Non-indexed inputs, decoded together from `data`. */
  dataTypes: ParamType[];
  /** Per input in declaration order: where it comes from and how it becomes JSON. */
  fields: Array<{ name: string; topic: number | null; type: ParamType; convert: Converter }>;
}

const coder = AbiCoder.defaultAbiCoder();

/**
 * Builds a decoder for the given contracts; share it with anything that turns logs into events.
 *
 * It decodes with ethers' AbiCoder against fragments looked up by topic0 in a map built once.
 * Not `Interface.parseLog`: that finds the fragment by recomputing every event's keccak topic
 * hash on each call, which made decoding 10,000 logs take 2.4 s instead of milliseconds.
 */
export function createLogDecoder(
  chainId: number,
  contracts: Partial<Record<ShoalContractName, string>>,
): LogDecoder {
  const codecs = new Map<string, Map<string, EventCodec>>();
  for (const [name, address] of Object.entries(contracts) as Array<[ShoalContractName, string]>) {
    if (address === undefined) continue;
    const byTopic = new Map<string, EventCodec>();
    new Interface(ABIS[name]).forEachEvent((event) => {
      if (event.anonymous) return;
      let topic = 0;
      byTopic.set(event.topicHash, {
        contract: name,
        address: getAddress(address),
        event: event.name,
        dataTypes: event.inputs.filter((input) => !input.indexed),
        fields: event.inputs.map((input, i) => ({
          name: input.name || String(i),
          topic: input.indexed ? ++topic : null,
          type: input,
          convert: converterFor(input),
        })),
      });
    });
    codecs.set(address.toLowerCase(), byTopic);
  }

  return {
    chainId,
    addresses: [...codecs.keys()],
    decode(log, timestamp) {
      const codec = codecs.get(log.address.toLowerCase())?.get(log.topics[0]?.toLowerCase());
      if (!codec) return null;
      const data = codec.dataTypes.length > 0 ? coder.decode(codec.dataTypes, log.data) : [];
      const args: Record<string, JsonValue> = {};
      let next = 0;
      for (const field of codec.fields) {
        if (field.topic === null) {
          args[field.name] = field.convert(data[next++]);
        } else if (
          field.type.isTuple() ||
          field.type.isArray() ||
          /^(string|bytes)$/.test(field.type.baseType)
        ) {
          // Indexed dynamic values (strings, arrays, structs) are only their hash in the log.
          args[field.name] = log.topics[field.topic];
        } else {
          args[field.name] = field.convert(coder.decode([field.type], log.topics[field.topic])[0]);
        }
      }
      const logIndex = Number(log.index ?? log.logIndex);
      const txHash = log.transactionHash.toLowerCase();
      return {
        id: `${chainId}:${txHash}:${logIndex}`,
        chainId,
        contract: codec.contract,
        address: codec.address,
        event: codec.event,
        args,
        blockNumber: Number(log.blockNumber),
        blockHash: log.blockHash,
        txHash,
        logIndex,
        timestamp,
      };
    },
  };
}

/** The contracts and first block to read, from a deployments JSON written by scripts/deploy.ts. */
export function contractsFromDeployment(
  record: { contracts: Partial<Record<string, { address: string; blockNumber: number }>> },
  names: readonly ShoalContractName[] = REGISTRY_CONTRACTS,
): { contracts: Partial<Record<ShoalContractName, string>>; startBlock: number } {
  const contracts: Partial<Record<ShoalContractName, string>> = {};
  let startBlock = Number.MAX_SAFE_INTEGER;
  for (const name of names) {
    const entry = record.contracts[name];
    if (!entry) throw new ChainSourceError(`the deployments record has no ${name}; redeploy the contracts`);
    contracts[name] = entry.address;
    startBlock = Math.min(startBlock, entry.blockNumber);
  }
  return { contracts, startBlock };
}

// ---------------------------------------------------------------------------------------------------
// Source

export interface EthersChainSourceDeps {
  /** JSON-RPC endpoint over HTTP(S). */
  rpcUrl: string;
  /** Longest wait for one JSON-RPC response (default 30,000 ms). */
  rpcTimeoutMs?: number;
  chainId: number;
  contracts: Partial<Record<ShoalContractName, string>>;
  /** First block to read (the deployment block of the contracts). */
  startBlock: number;
  /** Directory of the checkpoint file. */
  dataDir: string;
  logger: Logger;
  /** File name inside dataDir (default chain-checkpoint.json); one per source. */
  checkpointName?: string;
  /** Blocks a log must be buried under before it is delivered (default 2). */
  confirmations?: number;
  /** Most blocks per eth_getLogs (default 2,000; halved automatically when a node refuses). */
  maxBlockRange?: number;
  /** Hashes of this many recent blocks are kept for reorg detection (default 64). */
  reorgWindow?: number;
  /** Pause between polls when caught up (default 1,000 ms). */
  pollIntervalMs?: number;
  /** Longest pause after repeated failures (default 30,000 ms). */
  maxBackoffMs?: number;
}

interface CheckpointFile {
  version: 1;
  chainId: number;
  contracts: Record<string, string>;
  startBlock: number;
  checkpoint: BlockRef;
  /** [number, hash] of recent delivered blocks, ascending. */
  recent: Array<[number, string]>;
}

interface Header {
  number: number;
  hash: string;
  parentHash: string;
  timestamp: number;
}

interface RpcBlock {
  number: string;
  hash: string;
  parentHash: string;
  timestamp: string;
}

interface RpcLog extends LogLike {
  removed?: boolean;
}

const hex = (n: number) => `0x${n.toString(16)}`;

/** An error object in a JSON-RPC response. */
class JsonRpcError extends ChainSourceError {
  constructor(
    method: string,
    readonly rpcMessage: string,
    readonly code: number | undefined,
  ) {
    // Nodes answer with errors for overload and pruned state as well as for bad requests; from
    // here none of them is provably permanent, so the loop retries with backoff.
    super(`the chain RPC refused ${method}`, {
      details: `${code ?? ""} ${rpcMessage}`.trim(),
      retryable: true,
    });
  }
}

type RpcCall = readonly [method: string, params: unknown[]];

/**
 * A minimal JSON-RPC client over fetch. Not ethers' JsonRpcProvider: it decodes response bodies
 * with a JavaScript UTF-8 decoder that needs seconds for the megabytes a 2,000-block eth_getLogs
 * returns (measured: 6-9 s for 10,000 logs, against 0.3-1 s with fetch and JSON.parse).
 */
function createJsonRpc(url: string, timeoutMs: number) {
  let id = 0;
  async function post(body: unknown, what: string): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new ChainSourceError(`the chain RPC at ${url} is not reachable (${what})`, {
        cause: error,
        retryable: true,
      });
    }
    if (!response.ok) {
      throw new ChainSourceError(`the chain RPC at ${url} answered HTTP ${response.status} (${what})`, {
        retryable: true,
      });
    }
    try {
      return await response.json();
    } catch (error) {
      throw new ChainSourceError(`the chain RPC at ${url} sent a broken response (${what})`, {
        cause: error,
        retryable: true,
      });
    }
  }
  type Reply = { id: number; result?: unknown; error?: { code?: number; message?: string } };
  const unwrap = <T>(method: string, reply: Reply | undefined): T => {
    if (!reply) throw new ChainSourceError(`the chain RPC left ${method} unanswered`, { retryable: true });
    if (reply.error) throw new JsonRpcError(method, reply.error.message ?? "", reply.error.code);
    return reply.result as T;
  };
  return {
    async call<T>(method: string, params: unknown[]): Promise<T> {
      return unwrap<T>(method, (await post({ jsonrpc: "2.0", id: ++id, method, params }, method)) as Reply);
    },
    async batch<T>(calls: readonly RpcCall[]): Promise<T[]> {
      if (calls.length === 0) return [];
      const first = id + 1;
      const body = calls.map(([method, params]) => ({ jsonrpc: "2.0", id: ++id, method, params }));
      const replies = await post(body, calls[0][0]);
      if (!Array.isArray(replies)) {
        const single = replies as Reply;
        throw new JsonRpcError(calls[0][0], single.error?.message ?? "batch refused", single.error?.code);
      }
      const byId = new Map((replies as Reply[]).map((r) => [r.id, r]));
      return calls.map(([method], i) => unwrap<T>(method, byId.get(first + i)));
    },
  };
}

// Providers phrase "your range or result set is too big" in many ways; all mean: ask for less.
const TOO_MUCH = /more than|too many|exceed|limit|range|too large|response size/i;

export function createEthersChainSource(deps: EthersChainSourceDeps): ChainSource {
  const {
    chainId,
    startBlock,
    confirmations = 2,
    maxBlockRange = 2_000,
    reorgWindow = 64,
    pollIntervalMs = 1_000,
    maxBackoffMs = 30_000,
  } = deps;
  const rpc = createJsonRpc(deps.rpcUrl, deps.rpcTimeoutMs ?? 30_000);
  const decoder = createLogDecoder(chainId, deps.contracts);
  const contracts = Object.fromEntries(
    Object.entries(deps.contracts).map(([name, address]) => [name, getAddress(address!)]),
  );
  const file = path.join(deps.dataDir, deps.checkpointName ?? "chain-checkpoint.json");
  const log = deps.logger.child({ component: "chain-source", chainId });

  let loaded = false;
  let tip: BlockRef = { number: startBlock - 1, hash: null };
  let recent = new Map<number, string>();
  let range = maxBlockRange;
  let head: number | null = null;
  let safeHead: number | null = null;
  let lock: Promise<unknown> = Promise.resolve();

  const toHeader = (block: RpcBlock | null): Header | null =>
    block && {
      number: Number(block.number),
      hash: block.hash,
      parentHash: block.parentHash,
      timestamp: Number(block.timestamp),
    };

  async function header(number: number): Promise<Header | null> {
    return toHeader(await rpc.call<RpcBlock | null>("eth_getBlockByNumber", [hex(number), false]));
  }

  /** Headers by number, in one batch request per 100 (null where the chain has no such block). */
  async function fetchHeaders(numbers: readonly number[]): Promise<Array<Header | null>> {
    const out: Array<Header | null> = [];
    for (let i = 0; i < numbers.length; i += 100) {
      const blocks = await rpc.batch<RpcBlock | null>(
        numbers.slice(i, i + 100).map((n) => ["eth_getBlockByNumber", [hex(n), false]]),
      );
      out.push(...blocks.map(toHeader));
    }
    return out;
  }

  async function load(): Promise<void> {
    if (loaded) return;
    const actual = Number(await rpc.call<string>("eth_chainId", []));
    if (actual !== chainId) {
      throw new ChainSourceError(
        `the chain RPC serves chain ${actual}, but the worker is configured for ${chainId}`,
      );
    }
    const saved = await readJsonFile<CheckpointFile>(file);
    if (saved) {
      const same =
        saved.version === 1 &&
        saved.chainId === chainId &&
        JSON.stringify(Object.entries(saved.contracts).sort()) ===
          JSON.stringify(Object.entries(contracts).sort());
      if (!same) {
        throw new ChainSourceError(
          `${file} belongs to another chain or deployment (chain ${saved.chainId}); delete it to read this one from block ${startBlock}`,
        );
      }
      tip = saved.checkpoint;
      recent = new Map(saved.recent);
      log.info({ checkpoint: tip.number }, "resuming from checkpoint");
    }
    loaded = true;
  }

  async function persist(): Promise<void> {
    const state: CheckpointFile = {
      version: 1,
      chainId,
      contracts,
      startBlock,
      checkpoint: tip,
      recent: [...recent.entries()].sort((a, b) => a[0] - b[0]),
    };
    await writeJsonFileAtomic(file, state);
  }

  function remember(headers: Iterable<Header>, newTip: number): void {
    for (const h of headers) recent.set(h.number, h.hash);
    for (const n of recent.keys()) if (n <= newTip - reorgWindow || n > newTip) recent.delete(n);
  }

  /** Highest remembered block whose hash the chain still has; startBlock - 1 when none is left. */
  async function commonAncestor(): Promise<BlockRef> {
    const remembered = [...recent.entries()].sort((a, b) => b[0] - a[0]);
    const current = await fetchHeaders(remembered.map(([n]) => n));
    for (let i = 0; i < remembered.length; i++) {
      const [number, hash] = remembered[i];
      if (current[i]?.hash === hash) return { number, hash };
    }
    return { number: startBlock - 1, hash: null };
  }

  async function getLogs(from: number, to: number): Promise<{ logs: RpcLog[]; to: number }> {
    for (;;) {
      try {
        const logs = await rpc.call<RpcLog[]>("eth_getLogs", [
          { address: decoder.addresses, fromBlock: hex(from), toBlock: hex(to) },
        ]);
        return { logs, to };
      } catch (error) {
        if (to > from && error instanceof JsonRpcError && TOO_MUCH.test(error.rpcMessage)) {
          range = Math.max(1, Math.floor((to - from + 1) / 2));
          to = from + range - 1;
          log.info({ range }, "node refused the block range; halving it");
          continue;
        }
        throw error;
      }
    }
  }

  const outcome = <T extends PollOutcome["type"]>(type: T) => ({
    type,
    head: head!,
    safeHead: safeHead!,
    checkpoint: tip.number,
  });

  async function step(handler: ChainBatchHandler, signal?: AbortSignal): Promise<PollOutcome> {
    await load();
    head = Number(await rpc.call<string>("eth_blockNumber", []));
    safeHead = head - confirmations;

    if (tip.hash !== null) {
      const current = await header(tip.number);
      if (current?.hash !== tip.hash) {
        const ancestor = await commonAncestor();
        const batch: ChainBatch = { type: "reorg", chainId, commonAncestor: ancestor, replacedHead: tip };
        log.warn(
          { replacedHead: tip, commonAncestor: ancestor },
          "reorg: re-deriving from the common ancestor",
        );
        await handler(batch, { signal });
        tip = ancestor;
        for (const n of recent.keys()) if (n > ancestor.number) recent.delete(n);
        await persist();
        return { ...outcome("reorg"), commonAncestor: ancestor };
      }
    }

    if (safeHead <= tip.number) return outcome("idle");
    const from = tip.number + 1;
    const fetched = await getLogs(from, Math.min(safeHead, from + range - 1));
    const to = fetched.to;
    const logs = fetched.logs
      .filter((l) => !l.removed)
      .sort(
        (a, b) => Number(a.blockNumber) - Number(b.blockNumber) || Number(a.logIndex) - Number(b.logIndex),
      );

    // Dense headers near the head give exact common ancestors; for long catch-up ranges only the
    // ends and the blocks with logs are fetched (their hashes and timestamps are needed anyway).
    const numbers = new Set<number>([from, to]);
    if (to - from + 1 <= reorgWindow) for (let n = from; n <= to; n++) numbers.add(n);
    for (const l of logs) numbers.add(Number(l.blockNumber));
    const wanted = [...numbers].sort((a, b) => a - b);
    const fetchedHeaders = await fetchHeaders(wanted);
    const byNumber = new Map<number, Header>();
    for (let i = 0; i < wanted.length; i++) {
      const h = fetchedHeaders[i];
      if (!h) throw new ChainSourceError(`block ${wanted[i]} vanished during the poll`, { retryable: true });
      byNumber.set(h.number, h);
    }
    const changed = () =>
      new ChainSourceError(`the chain changed during the poll of blocks ${from}..${to}`, { retryable: true });
    if (tip.hash !== null && byNumber.get(from)!.parentHash !== tip.hash) throw changed();
    for (const h of byNumber.values()) {
      const parent = byNumber.get(h.number - 1);
      if (parent && parent.hash !== h.parentHash) throw changed();
    }
    const events: ChainEvent[] = [];
    for (const l of logs) {
      const h = byNumber.get(Number(l.blockNumber))!;
      if (h.hash !== l.blockHash) throw changed();
      const event = decoder.decode(l, h.timestamp);
      if (event) events.push(event);
      else log.warn({ address: l.address, topic0: l.topics[0] }, "skipping a log no ABI decodes");
    }

    const toHash = byNumber.get(to)!.hash;
    await handler(
      { type: "logs", chainId, fromBlock: from, toBlock: to, toBlockHash: toHash, logs: events },
      { signal },
    );
    tip = { number: to, hash: toHash };
    remember(byNumber.values(), to);
    await persist();
    range = Math.min(maxBlockRange, range * 2);
    log.debug({ fromBlock: from, toBlock: to, events: events.length }, "delivered");
    return { ...outcome("logs"), fromBlock: from, events: events.length };
  }

  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = lock.then(fn, fn);
    lock = next.catch(() => undefined);
    return next;
  }

  const source: ChainSource = {
    chainId,
    startBlock,
    reorgWindow,

    poll(handler, options = {}) {
      return exclusive(() => step(handler, options.signal));
    },

    async run(handler, options = {}) {
      const { signal } = options;
      let failures = 0;
      try {
        while (!signal?.aborted) {
          try {
            const result = await source.poll(handler, { signal });
            failures = 0;
            if (result.type === "idle") await sleep(pollIntervalMs, signal);
          } catch (error) {
            if (signal?.aborted) break;
            if (!isRetryable(error)) throw error;
            failures++;
            // Jitter (half the ceiling fixed, half random) keeps a fleet of workers that lost
            // the same node from retrying in lockstep when it comes back.
            const delayMs = backoffDelay(failures, {
              initialMs: pollIntervalMs,
              maxMs: maxBackoffMs,
              jitter: 0.5,
            });
            log.warn({ err: error, failures, delayMs }, "chain poll failed; retrying");
            await sleep(delayMs, signal);
          }
        }
      } finally {
        log.debug("stopped");
      }
    },

    rewind(block) {
      return exclusive(async () => {
        await load();
        if (block >= tip.number) return;
        const floor = Math.max(block, startBlock - 1);
        tip = { number: floor, hash: recent.get(floor) ?? null };
        for (const n of recent.keys()) if (n > floor) recent.delete(n);
        await persist();
        log.info({ checkpoint: floor }, "rewound");
      });
    },

    status(): ChainSourceStatus {
      return { chainId, checkpoint: tip, head, safeHead };
    },
  };
  return source;
}
