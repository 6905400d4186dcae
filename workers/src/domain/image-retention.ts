/**
 * Which delivered images a device keeps (pinned in its IPFS node and tagged `shoal-cid:<cid>` in
 * its engine) and which it lets go (issue 14). Pure: the caller gathers the facts.
 *
 * A device keeps an image while it runs it or may soon serve it again:
 *   - live: the version of one of its placements that is not over (Claimed or Running);
 *   - in use: any container of the engine was created from it (any device, any state: Docker
 *     would refuse to remove it, and a stopped container may be started again in place);
 *   - young: delivered less than `minAgeMs` ago (a delivery whose container is not created yet,
 *     or another worker's on a shared engine);
 *   - recent: among the others, the `keepRecent` most recently used (live or in use), so a roll
 *     back or a replica moving back finds its image, and the device still serves the versions
 *     its peers are most likely to ask for.
 * Everything else is released: unpinned (garbage collection may drop its blocks) and untagged.
 */

export interface DeliveredImage {
  cid: string;
  /** When it was last live or in use on this device, else when it was delivered (ms since epoch). */
  lastUsedAt: number;
  /** When it was delivered (tagged), ms since epoch. */
  deliveredAt: number;
  /** A container of the engine was created from it. */
  inUse: boolean;
}

export interface RetentionInput {
  images: readonly DeliveredImage[];
  /** Image CIDs of the device's placements that are not over. */
  live: ReadonlySet<string>;
  keepRecent: number;
  minAgeMs: number;
  now: number;
}

export type KeepReason = "live" | "in-use" | "young" | "recent";

export interface RetentionDecision {
  keep: { cid: string; reason: KeepReason }[];
  /** CIDs to unpin and untag, least recently used first. */
  release: string[];
}

export function retainImages(input: RetentionInput): RetentionDecision {
  const keep: RetentionDecision["keep"] = [];
  const others: DeliveredImage[] = [];
  for (const image of input.images) {
    if (input.live.has(image.cid)) keep.push({ cid: image.cid, reason: "live" });
    else if (image.inUse) keep.push({ cid: image.cid, reason: "in-use" });
    else if (input.now - image.deliveredAt < input.minAgeMs) keep.push({ cid: image.cid, reason: "young" });
    else others.push(image);
  }
  // Most recent first; the CID breaks ties so the decision does not depend on the input's order.
  others.sort((a, b) => b.lastUsedAt - a.lastUsedAt || (a.cid < b.cid ? -1 : a.cid > b.cid ? 1 : 0));
  const recent = others.slice(0, Math.max(0, input.keepRecent));
  for (const image of recent) keep.push({ cid: image.cid, reason: "recent" });
  return {
    keep,
    release: others
      .slice(recent.length)
      .reverse()
      .map((image) => image.cid),
  };
}
