/**
 * Small JSON files that must survive a crash at any instant (chain checkpoint, bridge state):
 * written to a temporary file, fsynced, then renamed over the old one, so a reader sees either the
 * old or the new content and never a torn write.
 */
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import { ShoalError } from "../errors";

export class CheckpointError extends ShoalError {
  override name = "CheckpointError";
}

/** The parsed file, or undefined when it does not exist. */
export async function readJsonFile<T>(file: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CheckpointError(`could not read ${file}`, { cause: error, retryable: true });
  }
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    // Cannot happen through writeJsonFileAtomic; a hand-edited or foreign file needs a human.
    throw new CheckpointError(`${file} is not valid JSON; fix or delete it to start over`, { cause: error });
  }
}

let sequence = 0;

export async function writeJsonFileAtomic(file: string, value: unknown): Promise<void> {
  // Unique per process and call: two writers in one process must not share a temporary file.
  const tmp = `${file}.${process.pid}.${++sequence}.tmp`;
  try {
    await mkdir(path.dirname(file), { recursive: true });
    const handle = await open(tmp, "w");
    try {
      await handle.writeFile(JSON.stringify(value));
      // Without the fsync a power loss after rename can leave an empty file under the new name.
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw new CheckpointError(`could not write ${file}`, { cause: error, retryable: true });
  }
}
