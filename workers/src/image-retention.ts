/**
 * Image retention (issue 14): lets go of the images a device no longer needs, by the policy of
 * domain/image-retention.ts (keep live, in-use, young and the `keepRecent` most recently used;
 * release the rest). The delivered images are the engine's `shoal-cid:<cid>` tags: only delivery
 * sets them, and it pins the CID before it tags, so "tagged" means "pinned by delivery".
 *
 * Releasing one image: the tag is removed first (Docker deletes the image with its last
 * reference; tags the tar carried itself keep it), then the CID is unpinned, so a tagged image is
 * always pinned and can be served to a peer. The reconciler calls sweep() after each pass with
 * the image CIDs of the device's live placements; a sweep runs when that set changed since the
 * last one, or `intervalMs` after it. Errors are per image: logged, and the next sweep tries
 * again; nothing else waits on a sweep.
 */
import type { Logger } from "pino";
import { IMAGE_CID_REPOSITORY, imageRefForCid } from "./domain/container-spec";
import { retainImages, type DeliveredImage, type RetentionDecision } from "./domain/image-retention";
import type { ContentStore } from "./ports/content-store";
import type { Runtime } from "./ports/runtime";

export interface ImageRetentionDeps {
  runtime: Runtime;
  contentStore: ContentStore;
  /** How many images beyond the live and in-use ones stay (most recently used first). */
  keepRecent: number;
  /** An image delivered less than this long ago stays. */
  minAgeMs: number;
  /** Longest time between two sweeps while the live set does not change. */
  intervalMs: number;
  logger?: Logger;
  now?: () => number;
}

export interface SweepResult extends RetentionDecision {
  /** False when the sweep was skipped (nothing changed and `intervalMs` has not passed). */
  ran: boolean;
  /** CIDs whose release failed (they stay, and the next sweep tries again). */
  failed: string[];
}

export interface ImageRetention {
  /** `live`: the image CIDs of the device's placements that are not over. */
  sweep(params: { live: ReadonlySet<string>; force?: boolean; signal?: AbortSignal }): Promise<SweepResult>;
}

export function createImageRetention(deps: ImageRetentionDeps): ImageRetention {
  const now = deps.now ?? Date.now;
  /** When each delivered CID was last live or in use, as this process saw it. */
  const lastUsed = new Map<string, number>();
  let lastLive = "";
  /** When the next sweep is due although the live set did not change. */
  let dueAt = -Infinity;

  return {
    async sweep({ live, force = false, signal }) {
      const at = now();
      for (const cid of live) lastUsed.set(cid, at);
      const liveKey = [...live].sort().join(",");
      if (!force && liveKey === lastLive && at < dueAt) {
        return { ran: false, keep: [], release: [], failed: [] };
      }
      const tagged = await deps.runtime.listImageTags(IMAGE_CID_REPOSITORY, { signal });
      const images: DeliveredImage[] = [];
      for (const { tag, taggedAt } of tagged) {
        const cid = tag.slice(IMAGE_CID_REPOSITORY.length + 1);
        const inUse = !live.has(cid) && (await deps.runtime.containersUsingImage(tag, { signal })) > 0;
        if (inUse) lastUsed.set(cid, at);
        const deliveredAt = taggedAt === undefined ? 0 : Date.parse(taggedAt) || 0;
        images.push({ cid, inUse, deliveredAt, lastUsedAt: lastUsed.get(cid) ?? deliveredAt });
      }
      // Forget CIDs no longer delivered here: the map stays as small as the engine's tag list.
      const present = new Set(images.map((image) => image.cid));
      for (const cid of lastUsed.keys()) if (!present.has(cid) && !live.has(cid)) lastUsed.delete(cid);

      const decision = retainImages({
        images,
        live,
        keepRecent: deps.keepRecent,
        minAgeMs: deps.minAgeMs,
        now: at,
      });
      const failed: string[] = [];
      for (const cid of decision.release) {
        signal?.throwIfAborted();
        try {
          // Tag first, pin second: a tagged image stays fetchable by the next device.
          await deps.runtime.untagImage(imageRefForCid(cid), { signal });
          await deps.contentStore.unpin(cid, { signal });
          lastUsed.delete(cid);
          deps.logger?.info({ imageCid: cid }, "image released: untagged and unpinned");
        } catch (error) {
          failed.push(cid);
          deps.logger?.warn({ imageCid: cid, err: error }, "could not release image; the next sweep retries");
        }
      }
      lastLive = liveKey;
      // A failure is retried at the next pass; a young image is looked at again once it is not.
      const youngUntil = images
        .filter((image) => decision.keep.some((k) => k.cid === image.cid && k.reason === "young"))
        .map((image) => image.deliveredAt + deps.minAgeMs);
      dueAt = failed.length > 0 ? at : Math.min(at + deps.intervalMs, ...youngUntil);
      return { ran: true, ...decision, release: decision.release.filter((c) => !failed.includes(c)), failed };
    },
  };
}
