/**
 * A decoded contract event as the worker, the bridge, MQTT consumers and tools see it. Pure data:
 * the chain source (a port) produces it, the domain (desired state, topics) consumes it.
 */

/** A value that survives `JSON.stringify` / `JSON.parse` unchanged. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** The contracts whose events Shoal bridges (names as in the deployments JSON). */
export type ShoalContractName = "AppRegistry" | "DeviceRegistry" | "PlacementRegistry" | "ShoalToken";

export interface BlockRef {
  number: number;
  /** Null when the block is known only by number (before the first processed block). */
  hash: string | null;
}

/** One decoded contract event. */
export interface ChainEvent {
  /** `<chainId>:<txHash>:<logIndex>`: the same on every worker, so consumers can de-duplicate. */
  id: string;
  chainId: number;
  contract: ShoalContractName;
  /** Checksummed address of the emitting contract. */
  address: string;
  /** Event name as in the Solidity interface, e.g. "PlacementClaimed". */
  event: string;
  /**
   * Arguments by name. Integers of up to 48 bits (uint8..uint48, enums) are numbers; wider ones
   * (uint64 placement ids, uint256 amounts) are decimal strings, decided by ABI type and never by
   * value so a consumer sees one type per field; structs are objects with their field names.
   */
  args: Record<string, JsonValue>;
  blockNumber: number;
  blockHash: string;
  txHash: string;
  logIndex: number;
  /** Block timestamp in seconds since the epoch. */
  timestamp: number;
}
