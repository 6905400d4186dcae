/** The ResourceAnchor port over ethers v6 and the ResourceLog contract's bindings. */
import { Wallet, type JsonRpcProvider } from "ethers";
import { ResourceLog__factory } from "../../../typechain-types";
import type { AnchorHead, EpochAnchor, ResourceAnchor } from "../ports/resource-anchor";
import { abortable } from "../lib/supervise";
import { ShoalError } from "../errors";

export class ResourceAnchorError extends ShoalError {
  override name = "ResourceAnchorError";
}

export interface EthersResourceAnchorOptions {
  provider: JsonRpcProvider;
  /** The ResourceLog's address and deployment block (deployments/<network>.json). */
  contract: { address: string; blockNumber: number };
  /** The operator's key; without it the adapter only reads. */
  operatorKey?: string;
}

function translate(action: string, error: unknown): ResourceAnchorError {
  const revert = (error as { revert?: { name: string; args: readonly unknown[] } | null }).revert;
  if (revert)
    return new ResourceAnchorError(
      `${action}: reverted with ${revert.name}(${revert.args.map(String).join(", ")})`,
      {
        cause: error,
      },
    );
  const code = (error as { code?: string }).code;
  return new ResourceAnchorError(
    `${action}: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`,
    {
      cause: error,
      retryable: code !== "CALL_EXCEPTION" && code !== "INVALID_ARGUMENT",
    },
  );
}

export function createEthersResourceAnchor(options: EthersResourceAnchorOptions): ResourceAnchor {
  const { provider, contract } = options;
  // Its own signer, no NonceManager: anchors are rare, and a plain Wallet reads the pending nonce
  // per transaction, so it never falls out of step with the registry's heartbeats and claims.
  const signer = options.operatorKey === undefined ? undefined : new Wallet(options.operatorKey, provider);
  const log = ResourceLog__factory.connect(contract.address, signer ?? provider);
  const guard = async <T>(action: string, work: () => Promise<T>, signal?: AbortSignal): Promise<T> => {
    try {
      return await abortable(work(), signal);
    } catch (error) {
      if (signal?.aborted) throw error;
      throw translate(action, error);
    }
  };
  return {
    head: (deviceId, o) =>
      guard(
        "reading the resource log head",
        async (): Promise<AnchorHead> => {
          const h = await log.head(deviceId);
          return { epochs: Number(h.epochs), nextSeq: Number(h.nextSeq) };
        },
        o?.signal,
      ),
    anchor: (deviceId, e, o) =>
      guard(
        `anchoring epoch ${e.epoch}`,
        async () => {
          if (signer === undefined) throw new ResourceAnchorError("no operator key to anchor with");
          const tx = await log.anchor(deviceId, e.epoch, e.firstSeq, e.count, e.lastHash, e.cid);
          const receipt = await tx.wait();
          if (!receipt) throw new ResourceAnchorError("no receipt", { retryable: true });
          return { hash: receipt.hash, gasUsed: receipt.gasUsed };
        },
        o?.signal,
      ),
    anchors: (deviceId, o) =>
      guard(
        "reading the resource log anchors",
        async (): Promise<EpochAnchor[]> => {
          const events = await log.queryFilter(
            log.filters.ResourceLogAnchored(deviceId),
            contract.blockNumber,
          );
          return events
            .map((ev) => ({
              epoch: Number(ev.args.epoch),
              firstSeq: Number(ev.args.firstSeq),
              count: Number(ev.args.count),
              lastHash: ev.args.lastHash,
              cid: ev.args.cid,
            }))
            .sort((a, b) => a.epoch - b.epoch);
        },
        o?.signal,
      ),
  };
}
