// `docker save` tars a Shoal image must never be: one holding two images, and one whose config
// names another platform than the one it is listed under. Built from the demo images with the
// docker CLI and tar; nothing is loaded into the engine here.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** `docker save` of the given images into one tar (one image: the tar a Shoal app ships). */
export async function savedTar(dir: string, refs: string[]): Promise<string> {
  const file = path.join(dir, `saved-${refs.length}.tar`);
  await run("docker", ["save", "-o", file, ...refs]);
  return file;
}

/**
 * `docker save` of `ref` with its config rewritten to say `architecture` (an image built for
 * another platform, as far as any engine can tell) and its tags dropped, so loading it never moves
 * a tag of the real image. Returns the tar and the image id loading it creates (for cleanup).
 */
export async function otherPlatformTar(
  dir: string,
  ref: string,
  architecture: string,
): Promise<{ file: string; imageId: string }> {
  const work = path.join(dir, `other-platform-${architecture}`);
  await mkdir(work, { recursive: true });
  const saved = await savedTar(dir, [ref]);
  await run("tar", ["-xf", saved, "-C", work]);
  const index = JSON.parse(await readFile(path.join(work, "manifest.json"), "utf8")) as {
    Config: string;
    RepoTags: string[] | null;
  }[];
  if (index.length !== 1) throw new Error(`docker save of ${ref} holds ${index.length} images`);
  const configFile = path.join(work, index[0].Config);
  const config = JSON.parse(await readFile(configFile, "utf8")) as { architecture: string };
  config.architecture = architecture;
  const bytes = Buffer.from(JSON.stringify(config));
  await writeFile(configFile, bytes);
  index[0].RepoTags = null;
  await writeFile(path.join(work, "manifest.json"), JSON.stringify(index));
  // The legacy tag list: an engine may apply it too.
  await rm(path.join(work, "repositories"), { force: true });
  const file = path.join(dir, `other-platform-${architecture}.tar`);
  await run("tar", ["-cf", file, "-C", work, ...(await readdir(work))]);
  return { file, imageId: `sha256:${createHash("sha256").update(bytes).digest("hex")}` };
}
