/**
 * A device's heartbeat at about one JSON-RPC call per beat (issue 17). A heartbeat sent the way
 * the registry's other transactions are (ethers' populate, send, wait) costs 8 calls on automine
 * and 14 on 2-s blocks: a nonce read, a gas estimate, three fee reads, a block number, the send
 * and the receipt polling. A thousand devices beating every 100 s would spend the fleet's whole
 * RPC budget (50 requests/s) on that alone. Here, in steady state, a beat is two calls: the
 * previous beat's receipt and the new beat's eth_sendRawTransaction.
 *
 *   gas limit   estimated once (the heartbeat's gas is O(1)) with 50 % headroom; estimated again
 *               after a beat that reverted or ran out of gas
 *   fees        ethers' fee data (EIP-1559: 2 × the latest base fee + the node's tip), reused
 *               for `feeMaxAgeMs`; read again at once when the node refuses a beat as underpriced
 *               or its fee as too low (that beat is then sent once more) and before a replacement
 *   nonce       the registry's NonceManager, reset after any failed send as its other sends do
 *   receipt     not awaited: the beat returns the hash the node accepted, and the next beat reads
 *               it. Mined with status 0: the contract's error is named (the call replayed on the
 *               state after its block) and thrown from that next beat; the gas limit is estimated
 *               again, and when that estimate reverts too (the device cannot beat: withdrawn, or
 *               the key is no longer its operator) the next beat is not sent, so a device that
 *               cannot beat burns no gas. Not mined yet: when it was sent less than
 *               `replaceAfterMs` ago nothing is sent (a heartbeat only says "alive now", and the
 *               pending one says it when mined); when older, it is stuck (fees below the base
 *               fee, or dropped by the node) and this beat replaces it: same nonce, fresh fees
 *               and at least 1/8 above its fees (nodes require 10 % to replace), so beats never
 *               pile up behind a stuck one.
 */
import { isError, type JsonRpcProvider, type NonceManager, type Wallet } from "ethers";
import { RegistryError, type HeartbeatResult } from "../ports/registry";

export interface HeartbeatOptions {
  /** How long fee data is reused (ms; default 5 min, three beats of the default 300-s TTL). */
  feeMaxAgeMs?: number;
  /** An unmined previous beat older than this is replaced, a younger one waited for (ms; default 30 s). */
  replaceAfterMs?: number;
}

export interface HeartbeatDeps {
  provider: JsonRpcProvider;
  wallet: Wallet;
  /** The registry's one nonce sequence: heartbeats share it with claims and keeper calls. */
  nonces: NonceManager;
  /** The heartbeat's call: DeviceRegistry and heartbeat(deviceId) encoded. */
  to: string;
  data: string;
  /** "heartbeat of device N": the start of every error message. */
  action: string;
  translate(action: string, error: unknown): RegistryError;
  /** The error of a call mined reverted in `blockNumber`, named by replaying it there. */
  nameMinedRevert(action: string, blockNumber: number, hash: string): Promise<RegistryError>;
  abortError(action: string, signal: AbortSignal): RegistryError;
  options?: HeartbeatOptions;
  now?: () => number;
}

type Fees = { type: 2; maxFeePerGas: bigint; maxPriorityFeePerGas: bigint } | { type: 0; gasPrice: bigint };

interface SentBeat {
  hash: string;
  nonce: number;
  gasLimit: bigint;
  fees: Fees;
  sentAt: number;
}

/** The receipt fields read, as the node sends them (hex quantities). */
interface RawReceipt {
  blockNumber: string;
  status: string;
  gasUsed: string;
}

/**
 * A node's refusal of a transaction for its price: geth "transaction underpriced", "replacement
 * transaction underpriced", "max fee per gas less than block base fee"; Hardhat "Transaction
 * maxFeePerGas (1) is too low for the next block"; Nethermind "FeeTooLow".
 */
const UNDERPRICED =
  /underpriced|fee ?too ?low|(?:fee|tip|gas ?price)\w*(?: \(\d+\))? (?:is )?too low|less than (?:the )?(?:block )?base ?fee/i;

export function isUnderpriced(error: unknown): boolean {
  if (isError(error, "REPLACEMENT_UNDERPRICED")) return true;
  return UNDERPRICED.test(error instanceof Error ? error.message : String(error));
}

/** 1/8 more, rounded up: above the 10 % geth, Hardhat and others require of a replacement. */
const bump = (value: bigint) => value + value / 8n + 1n;

function atLeast(fresh: Fees, floor: Fees): Fees {
  const max = (a: bigint, b: bigint) => (a > b ? a : b);
  if (fresh.type === 2 && floor.type === 2)
    return {
      type: 2,
      maxFeePerGas: max(fresh.maxFeePerGas, bump(floor.maxFeePerGas)),
      maxPriorityFeePerGas: max(fresh.maxPriorityFeePerGas, bump(floor.maxPriorityFeePerGas)),
    };
  if (fresh.type === 0 && floor.type === 0)
    return { type: 0, gasPrice: max(fresh.gasPrice, bump(floor.gasPrice)) };
  return fresh;
}

/** The previous beat's error as thrown from the beat that found it, saying what became of this one. */
function reported(previous: RegistryError, what: string): RegistryError {
  return new RegistryError(`${previous.shortMessage}; ${what}`, {
    cause: previous,
    retryable: previous.retryable,
    errorName: previous.errorName,
    errorArgs: previous.errorArgs,
  });
}

/** Returns `beat(signal)`; beats run one at a time (an aborted one finishes before the next starts). */
export function createHeartbeat(deps: HeartbeatDeps): (signal?: AbortSignal) => Promise<HeartbeatResult> {
  const { provider, wallet, nonces, to, data, action, translate } = deps;
  const feeMaxAgeMs = deps.options?.feeMaxAgeMs ?? 300_000;
  const replaceAfterMs = deps.options?.replaceAfterMs ?? 30_000;
  const now = deps.now ?? Date.now;

  let last: SentBeat | undefined;
  let gasLimit: bigint | undefined;
  let fees: { value: Fees; readAt: number } | undefined;
  let chainId: bigint | undefined;

  const readFees = async (): Promise<Fees> => {
    const data = await provider.getFeeData();
    const value: Fees =
      data.maxFeePerGas !== null && data.maxPriorityFeePerGas !== null
        ? { type: 2, maxFeePerGas: data.maxFeePerGas, maxPriorityFeePerGas: data.maxPriorityFeePerGas }
        : { type: 0, gasPrice: data.gasPrice ?? 0n };
    fees = { value, readAt: now() };
    return value;
  };

  /** The previous beat's receipt, one call: what it says decides what this beat does. */
  const checkPrevious = async (
    previous: SentBeat,
  ): Promise<
    { state: "mined"; blockNumber: number; error?: RegistryError } | { state: "pending" } | { state: "stuck" }
  > => {
    const receipt = (await provider.send("eth_getTransactionReceipt", [previous.hash])) as RawReceipt | null;
    if (receipt === null)
      return now() - previous.sentAt < replaceAfterMs ? { state: "pending" } : { state: "stuck" };
    const blockNumber = Number(receipt.blockNumber);
    if (Number(receipt.status) === 1) return { state: "mined", blockNumber };
    const where = `${action}, the previous beat ${previous.hash} in block ${blockNumber}`;
    const error =
      BigInt(receipt.gasUsed) >= previous.gasLimit
        ? new RegistryError(`${where}: ran out of gas (limit ${previous.gasLimit})`, { retryable: true })
        : await deps.nameMinedRevert(where, blockNumber, previous.hash);
    return { state: "mined", blockNumber, error };
  };

  const beat = async (signal?: AbortSignal): Promise<HeartbeatResult> => {
    let previousBlock: number | undefined;
    let previousError: RegistryError | undefined;
    let replacing: SentBeat | undefined;
    try {
      if (last) {
        const previous = await checkPrevious(last);
        if (previous.state === "pending") return { hash: last.hash, sent: "pending" };
        if (previous.state === "stuck") replacing = last;
        else {
          previousBlock = previous.blockNumber;
          previousError = previous.error;
          last = undefined;
          // The limit may be what failed; a new estimate also tells whether a beat can pass now.
          if (previousError) gasLimit = undefined;
        }
      }
      gasLimit ??= await provider
        .estimateGas({ from: wallet.address, to, data })
        .then((estimate) => estimate + estimate / 2n);
      chainId ??= (await provider.getNetwork()).chainId;
      // A stuck beat may be stuck for its fees: read them again before replacing it.
      if (replacing || !fees || now() - fees.readAt >= feeMaxAgeMs) await readFees();
    } catch (error) {
      const current = translate(action, error);
      if (!previousError) throw current;
      const why = current.errorName ? `it would revert too` : current.shortMessage;
      throw reported(previousError, `this beat was not sent (${why})`);
    }

    let sending: { hash: string; sent: "new" | "replaced" };
    try {
      sending = await send(replacing, signal);
    } catch (error) {
      if (!previousError) throw error;
      throw reported(previousError, `this beat failed too (${(error as RegistryError).shortMessage})`);
    }
    const { hash, sent } = sending;
    if (previousError) throw reported(previousError, `this beat was sent as ${hash}`);
    return { hash, sent, previousBlock };
  };

  /** Signs and sends one beat (a replacement of `replacing` when given); at most one retry. */
  const send = async (
    replacing: SentBeat | undefined,
    signal?: AbortSignal,
  ): Promise<{ hash: string; sent: "new" | "replaced" }> => {
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw deps.abortError(action, signal);
      let taken = false;
      try {
        let nonce: number;
        if (replacing) nonce = replacing.nonce;
        else {
          // As NonceManager.sendTransaction does: take the number before awaiting it, so a claim
          // sent meanwhile gets the next one.
          const next = nonces.getNonce("pending");
          nonces.increment();
          taken = true;
          nonce = await next;
        }
        const priced = replacing ? atLeast(fees!.value, replacing.fees) : fees!.value;
        const raw = await wallet.signTransaction({ ...priced, chainId, nonce, to, data, gasLimit });
        const hash = (await provider.send("eth_sendRawTransaction", [raw])) as string;
        last = { hash, nonce, gasLimit: gasLimit!, fees: priced, sentAt: now() };
        return { hash, sent: replacing ? "replaced" : "new" };
      } catch (error) {
        // The local nonce may now be ahead of the chain's (or behind it): resync on the next send.
        if (taken) nonces.reset();
        if (attempt === 1 && isUnderpriced(error)) {
          try {
            await readFees();
          } catch (read) {
            throw translate(action, read);
          }
          continue;
        }
        if (attempt === 1 && isError(error, "NONCE_EXPIRED")) {
          // The nonce was used: by the stuck beat, mined meanwhile, or by another transaction of
          // this key (the NonceManager was behind). Its receipt is not read again; send a new beat.
          nonces.reset();
          replacing = undefined;
          last = undefined;
          continue;
        }
        const translated = translate(action, error);
        // Reverted at the send (a node that executes it at once: Hardhat's automine): estimate again.
        if (translated.errorName) gasLimit = undefined;
        throw translated;
      }
    }
  };

  let queue: Promise<unknown> = Promise.resolve();
  return (signal) => {
    const run = queue.then(() => {
      if (signal?.aborted) throw deps.abortError(action, signal);
      return beat(signal);
    });
    queue = run.catch(() => undefined);
    return run;
  };
}
