/**
 * Image retention (issue 14): lets go of the images a device no longer needs, by the policy of
 * domain/image-retention.ts (keep live, in-use, young and the `keepRecent` most recently used;
 * release the rest). It considers only the versions this device ran (a CID that was live here),
 * and only while the engine holds their `shoal-cid:<cid>` tag: only delivery sets that tag, and it
 * pins the CID before it tags, so "tagged" means "pinned by delivery". On an engine shared by
 * several devices, one never releases what only another ran. When each CID was last used is kept
 * in `<dataDir>/image-retention.json`, so the order survives a restart.
 *
 * Releasing one image: the tag is removed first (Docker deletes the image with its last
 * reference; tags the tar carried itself keep it), then the CID is unpinned, so a tagged image is
 * always pinned and can be served to a peer. The reconciler calls sweep() after each pass with
 * the image CIDs of the device's live placements; a sweep runs when that set changed since the
 * last one, or `intervalMs` after it. Errors are per image: logged, and the next sweep tries
 * again; nothing else waits on a sweep.
 */
import path from "node:path";
import type { Logger } from "pino";
import { readJsonFile, writeJsonFileAtomic } from "./lib/json-file";
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
  /** Where the last-use times are kept across restarts; none: in memory only. */
  dataDir?: string;
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
  /** Every CID that was live on this device (and is not released), with when it last was live or in use. */
  const lastUsed = new Map<string, number>();
  const file = deps.dataDir === undefined ? undefined : path.join(deps.dataDir, "image-retention.json");
  let loaded = false;
  let saved = "";
  const load = async () => {
    if (loaded || file === undefined) return;
    let content: { lastUsed?: Record<string, number> } | undefined;
    try {
      content = await readJsonFile(file);
    } catch (error) {
      // A damaged file loses only the order of use: the versions seen live from now on count.
      deps.logger?.warn({ err: error, file }, "image retention: unreadable last-use file; starting afresh");
    }
    for (const [cid, at] of Object.entries(content?.lastUsed ?? {})) {
      if (typeof at === "number" && !lastUsed.has(cid)) lastUsed.set(cid, at);
    }
    loaded = true;
  };
  const save = async () => {
    if (file === undefined) return;
    const content = JSON.stringify({ lastUsed: Object.fromEntries(lastUsed) });
    if (content === saved) return;
    await writeJsonFileAtomic(file, JSON.parse(content));
    saved = content;
  };
  let lastLive = "";
  /** When the next sweep is due although the live set did not change. */
  let dueAt = -Infinity;

  return {
    async sweep({ live, force = false, signal }) {
      const at = now();
      await load();
      for (const cid of live) lastUsed.set(cid, at);
      const liveKey = [...live].sort().join(",");
      if (!force && liveKey === lastLive && at < dueAt) {
        return { ran: false, keep: [], release: [], failed: [] };
      }
      const tagged = await deps.runtime.listImageTags(IMAGE_CID_REPOSITORY, { signal });
      const images: DeliveredImage[] = [];
      for (const { tag, taggedAt } of tagged) {
        const cid = tag.slice(IMAGE_CID_REPOSITORY.length + 1);
        if (!lastUsed.has(cid)) continue; // never live here: another device's, or not ours to judge
        const inUse = !live.has(cid) && (await deps.runtime.containersUsingImage(tag, { signal })) > 0;
        if (inUse) lastUsed.set(cid, at);
        const deliveredAt = taggedAt === undefined ? 0 : Date.parse(taggedAt) || 0;
        images.push({ cid, inUse, deliveredAt, lastUsedAt: lastUsed.get(cid)! });
      }
      // Forget CIDs whose tag is gone (released, or removed by hand): the map stays as small as
      // the engine's tag list.
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
      await save();
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
