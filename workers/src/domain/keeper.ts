/**
 * The keeper's ledger and duties: which devices are stale, which expired placements wait to be
 * finalized and which claims are past their deadline, derived from chain events alone.
 *
 * Every worker keeps one ledger. It holds only what is live (devices, their open placements, the
 * expired placements not yet finalized), never the history: a placement leaves it when it ends. The
 * reducer touches the entities an event names (a device's expiry scans the open placements once),
 * and `keeperDuties` lists each due action with the chain time it becomes possible; the service
 * adds its own jitter so that, among the workers, usually one transaction wins. Pure: no I/O, no
 * clock (times are block timestamps in seconds).
 */

/** The part of a decoded chain event the ledger reads (a ChainEvent fits). */
export interface KeeperEvent {
  event: string;
  args: Record<string, unknown>;
  /** Block timestamp, unix seconds. */
  timestamp: number;
}

export interface LedgerDevice {
  /** Lower-case addresses; a device's own keys never collect its expiry bounty. */
  owner: string | null;
  operator: string | null;
  /** Block timestamp of the last heartbeat (or of the enrollment). */
  lastHeartbeat: number;
}

export interface LedgerPlacement {
  deviceId: number;
  /** The device generation it was claimed in; the device's expiry of that generation ends it. */
  deviceGeneration: number;
  state: "Claimed" | "Running";
  /** Block timestamp of the claim. */
  claimedAt: number;
}

export interface LedgerExpired {
  deviceId: number;
  /** Block timestamp of the device's expiry. */
  expiredAt: number;
}

/** JSON-safe, so a worker can persist it next to its chain checkpoint. */
export interface KeeperLedger {
  /** The contract's heartbeat TTL in seconds, once known (ParametersChanged or a read). */
  heartbeatTtlS: number | null;
  /**
   * The claim deadline in seconds, once known (ClaimDeadlineChanged or a read); null when unknown or
   * the registry has none (then no claim is ever overdue).
   */
  claimDeadlineS: number | null;
  devices: Record<string, LedgerDevice>;
  /** Open (Claimed or Running) placements, by placement id. */
  placements: Record<string, LedgerPlacement>;
  /** Placements of an expired device generation, waiting for finalizeExpired. */
  expired: Record<string, LedgerExpired>;
}

export function emptyLedger(
  heartbeatTtlS: number | null = null,
  claimDeadlineS: number | null = null,
): KeeperLedger {
  return { heartbeatTtlS, claimDeadlineS, devices: {}, placements: {}, expired: {} };
}

const address = (v: unknown) => (typeof v === "string" ? v.toLowerCase() : null);

/**
 * Applies one event to the ledger, in place (the caller owns it), and reports whether anything
 * changed. Idempotent for re-delivered events: a claim re-applied after its end re-opens nothing
 * only if the end is applied again too, which at-least-once delivery in block order guarantees.
 */
export function applyKeeperEvent(ledger: KeeperLedger, e: KeeperEvent): boolean {
  const a = e.args;
  const deviceKey = String(a.deviceId);
  const placementKey = String(a.placementId);
  switch (e.event) {
    case "DeviceEnrolled":
      ledger.devices[deviceKey] = {
        owner: address(a.owner),
        operator: address(a.operator),
        lastHeartbeat: e.timestamp,
      };
      return true;
    case "DeviceOperatorChanged": {
      const d = ledger.devices[deviceKey];
      if (d === undefined) return false;
      d.operator = address(a.newOperator);
      return true;
    }
    case "DeviceHeartbeat": {
      const d = (ledger.devices[deviceKey] ??= { owner: null, operator: null, lastHeartbeat: 0 });
      if (e.timestamp <= d.lastHeartbeat) return false;
      d.lastHeartbeat = e.timestamp;
      return true;
    }
    case "DeviceExited":
      if (ledger.devices[deviceKey] === undefined) return false;
      delete ledger.devices[deviceKey];
      return true;
    case "ParametersChanged": {
      const ttl = Number((a.parameters as Record<string, unknown> | undefined)?.heartbeatTtl);
      if (!Number.isFinite(ttl) || ttl === ledger.heartbeatTtlS) return false;
      ledger.heartbeatTtlS = ttl;
      return true;
    }
    case "ClaimDeadlineChanged": {
      const deadline = Number(a.claimDeadline);
      if (!Number.isFinite(deadline) || deadline === ledger.claimDeadlineS) return false;
      ledger.claimDeadlineS = deadline;
      return true;
    }
    case "PlacementClaimed":
      ledger.placements[placementKey] = {
        deviceId: Number(a.deviceId),
        deviceGeneration: Number(a.deviceGeneration),
        state: "Claimed",
        claimedAt: e.timestamp,
      };
      return true;
    case "PlacementConfirmed": {
      const p = ledger.placements[placementKey];
      if (p === undefined || p.state === "Running") return false;
      p.state = "Running";
      return true;
    }
    case "PlacementReleased":
    case "PlacementFailed":
    case "PlacementExpired": {
      const known = placementKey in ledger.placements || placementKey in ledger.expired;
      delete ledger.placements[placementKey];
      delete ledger.expired[placementKey];
      return known;
    }
    case "DeviceExpired": {
      // O(open placements) once per expiry: every open placement of the ended generation (or an
      // older one) is now Expired on chain until someone finalizes it.
      const deviceId = Number(a.deviceId);
      const generation = Number(a.generation);
      let changed = false;
      for (const [id, p] of Object.entries(ledger.placements)) {
        if (p.deviceId !== deviceId || p.deviceGeneration > generation) continue;
        delete ledger.placements[id];
        ledger.expired[id] = { deviceId, expiredAt: e.timestamp };
        changed = true;
      }
      return changed;
    }
    default:
      return false;
  }
}

export type KeeperDuty =
  | { kind: "expireDevice"; key: string; deviceId: number; dueAt: number }
  | { kind: "finalizeExpired"; key: string; placementId: string; dueAt: number }
  | { kind: "finalizeOverdueClaim"; key: string; placementId: string; dueAt: number };

export interface KeeperSelf {
  deviceId: number;
  /** This worker's signing address (the device's operator). */
  address: string;
}

export interface DutyOptions {
  self: KeeperSelf;
}

/**
 * Every action the ledger says is or will be possible, with the chain time (unix seconds) from
 * which the contract accepts it:
 *   expireDevice          a device holding open placements, from lastHeartbeat + TTL + 1 (the
 *                         contract's "fresh" includes the TTL's last second); never this device or
 *                         one whose owner or operator is this worker's key: its bounty is not ours
 *   finalizeExpired       each placement of an expired generation, at once
 *   finalizeOverdueClaim  each claim still Claimed, from claimedAt + deadline; not this device's own
 *                         (its reconciler confirms or reports a failure itself)
 * O(devices + open placements): no reads, no history.
 */
export function keeperDuties(ledger: KeeperLedger, options: DutyOptions): KeeperDuty[] {
  const { self } = options;
  const { claimDeadlineS } = ledger;
  const me = self.address.toLowerCase();
  const duties: KeeperDuty[] = [];
  const holding = new Set<number>();
  for (const [placementId, p] of Object.entries(ledger.placements)) {
    holding.add(p.deviceId);
    if (claimDeadlineS !== null && p.state === "Claimed" && p.deviceId !== self.deviceId)
      duties.push({
        kind: "finalizeOverdueClaim",
        key: `claim:${placementId}`,
        placementId,
        dueAt: p.claimedAt + claimDeadlineS,
      });
  }
  for (const [placementId, x] of Object.entries(ledger.expired))
    duties.push({ kind: "finalizeExpired", key: `expired:${placementId}`, placementId, dueAt: x.expiredAt });
  if (ledger.heartbeatTtlS !== null)
    for (const deviceId of holding) {
      const d = ledger.devices[String(deviceId)];
      if (d === undefined || deviceId === self.deviceId || d.operator === me || d.owner === me) continue;
      duties.push({
        kind: "expireDevice",
        key: `device:${deviceId}`,
        deviceId,
        dueAt: d.lastHeartbeat + ledger.heartbeatTtlS + 1,
      });
    }
  return duties.sort((x, y) => x.dueAt - y.dueAt || (x.key < y.key ? -1 : 1));
}

/**
 * When this worker acts on a duty (ms since the epoch, chain time): the duty's time plus this
 * worker's jitter for it, `jitterMs × random` with `random` drawn once per duty. Workers draw
 * independently, so the first to act usually wins by more than a block and the others see its
 * event (or a failed estimate) before they send.
 */
export function actAtMs(duty: KeeperDuty, random: number, jitterMs: number): number {
  return duty.dueAt * 1000 + Math.round(jitterMs * Math.min(1, Math.max(0, random)));
}
