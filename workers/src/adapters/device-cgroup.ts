/**
 * The per-device cgroup: every Shoal container of a device runs under one parent cgroup whose CPU
 * quota and memory limit are the device's enrolled capacity. The kernel then enforces the capacity
 * for the device as a whole, whatever the per-container limits say, so several simulated devices of
 * different sizes can share one host and none can take more than it enrolled.
 *
 * cgroup v1 refuses a child CPU quota above its parent's (EINVAL), so on v1 a container's quota
 * can never exceed its device's capacity; the controller keeps every limit at or below it anyway.
 *
 * Layout (cgroupfs driver; Docker takes CgroupParent as a path from the cgroup root):
 * - v1: <root>/<controller>/shoal/device-<id>/ for cpu, cpuacct, memory and pids, with
 *   cpu.cfs_period_us / cpu.cfs_quota_us and memory.limit_in_bytes (+ memsw when swap accounting
 *   is on). runc creates the container's own cgroup below it in every hierarchy it joins.
 * - v2: <root>/shoal/device-<id>/ with cpu.max and memory.max (memory.swap.max 0), and +cpu
 *   +memory +pids enabled in the subtree_control of each ancestor so the limits apply to children.
 */
import { constants } from "node:fs";
import { access, mkdir, readFile, readdir, rmdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { CPU_PERIOD_US } from "../domain/container-spec";
import { ShoalError } from "../errors";

export const DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup";
/** The directory under each hierarchy that holds the device cgroups. */
export const SHOAL_CGROUP_DIR = "shoal";

export type CgroupVersion = 1 | 2;

export class DeviceCgroupError extends ShoalError {
  override name = "DeviceCgroupError";
}

export interface DeviceCgroupOptions {
  deviceId: string;
  /** Default /sys/fs/cgroup. */
  root?: string;
  signal?: AbortSignal;
}

export interface EnsureDeviceCgroupOptions extends DeviceCgroupOptions {
  cpuMillicores: number;
  memoryMiB: number;
}

export interface DeviceCgroup {
  /** HostConfig.CgroupParent for the device's containers (ContainerSpecOptions.cgroupParent). */
  cgroupParent: string;
  version: CgroupVersion;
  /** Directories written, one per hierarchy (v1) or one (v2). */
  paths: string[];
}

/** Controllers whose v1 hierarchies get the device directory and its limits. */
const V1_CONTROLLERS = ["cpu", "cpuacct", "memory", "pids"] as const;
const V2_CONTROLLERS = ["cpu", "memory", "pids"] as const;
const MiB = 1024 * 1024;
const DEVICE_ID = /^[0-9A-Za-z_-][0-9A-Za-z_.-]{0,63}$/;

/** The cgroup parent of a device's containers, relative to the cgroup root. */
export function deviceCgroupParent(deviceId: string): string {
  return `/${SHOAL_CGROUP_DIR}/device-${checkId(deviceId)}`;
}

function checkId(deviceId: string): string {
  if (!DEVICE_ID.test(deviceId) || deviceId.includes("..")) {
    throw new DeviceCgroupError(
      `device id "${deviceId}" cannot name a cgroup; use letters, digits, _ - . (at most 64, no "..")`,
    );
  }
  return deviceId;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

/** 2 when `root` is the unified hierarchy (it has cgroup.controllers), else 1. */
export async function detectCgroupVersion(root: string = DEFAULT_CGROUP_ROOT): Promise<CgroupVersion> {
  return (await exists(path.join(root, "cgroup.controllers"))) ? 2 : 1;
}

function translate(action: string, error: unknown): DeviceCgroupError {
  if (error instanceof DeviceCgroupError) return error;
  const code = (error as { code?: string }).code;
  // EBUSY: a limit below current usage, or a directory with processes; both clear up later.
  const retryable = code === "EBUSY" || code === "EAGAIN" || code === "EINTR";
  const hint =
    code === "EACCES" || code === "EPERM" || code === "EROFS"
      ? "; the worker needs root (or a delegated cgroup) to manage device cgroups"
      : code === "EINVAL" && action.includes("cfs_quota_us")
        ? "; cgroup v1 refuses a CPU quota below a child's: lower the containers' quotas first"
        : "";
  return new DeviceCgroupError(`could not ${action}${hint}`, { cause: error, retryable });
}

async function write(file: string, value: string, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  try {
    await writeFile(file, value);
  } catch (error) {
    throw translate(`write "${value}" to ${file}`, error);
  }
}

async function ensureDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw translate(`create cgroup ${dir}`, error);
  }
}

async function readNumber(file: string): Promise<number> {
  const text = (await readFile(file, "utf8")).trim();
  return text === "max" ? Number.POSITIVE_INFINITY : Number(text);
}

function checkCapacity(cpuMillicores: number, memoryMiB: number): void {
  if (!Number.isInteger(cpuMillicores) || cpuMillicores < 10) {
    throw new DeviceCgroupError(
      `device cpuMillicores ${cpuMillicores} is not allowed; use an integer of at least 10 (CFS needs 1 ms per period)`,
    );
  }
  if (!Number.isInteger(memoryMiB) || memoryMiB < 4) {
    throw new DeviceCgroupError(`device memoryMiB ${memoryMiB} is not allowed; use an integer of at least 4`);
  }
}

/**
 * Creates (or updates) the device's cgroup with its capacity as hard caps, idempotently, and
 * returns the cgroup parent to create its containers under. Lowering the memory cap below what the
 * device's containers use fails with a retryable DeviceCgroupError (the kernel answers EBUSY).
 */
export async function ensureDeviceCgroup(options: EnsureDeviceCgroupOptions): Promise<DeviceCgroup> {
  const { deviceId, cpuMillicores, memoryMiB, root = DEFAULT_CGROUP_ROOT, signal } = options;
  const cgroupParent = deviceCgroupParent(deviceId);
  checkCapacity(cpuMillicores, memoryMiB);
  const quotaUs = Math.round((cpuMillicores * CPU_PERIOD_US) / 1000);
  const bytes = memoryMiB * MiB;
  const version = await detectCgroupVersion(root);
  if (version === 2) {
    const dir = path.join(root, cgroupParent);
    // Controllers must be enabled in every ancestor's subtree_control for the leaf to use them.
    for (const ancestor of [root, path.join(root, SHOAL_CGROUP_DIR)]) {
      await ensureDir(ancestor);
      const available = (await readFile(path.join(ancestor, "cgroup.controllers"), "utf8")).split(/\s+/);
      const missing = V2_CONTROLLERS.filter((c) => !available.includes(c));
      if (missing.length > 0) {
        throw new DeviceCgroupError(
          `cgroup ${ancestor} lacks the ${missing.join(", ")} controller(s); Shoal needs cpu and memory delegated`,
        );
      }
      await write(
        path.join(ancestor, "cgroup.subtree_control"),
        V2_CONTROLLERS.map((c) => `+${c}`).join(" "),
        signal,
      );
    }
    await ensureDir(dir);
    await write(path.join(dir, "cpu.max"), `${quotaUs} ${CPU_PERIOD_US}`, signal);
    await write(path.join(dir, "memory.max"), String(bytes), signal);
    if (await exists(path.join(dir, "memory.swap.max"))) {
      await write(path.join(dir, "memory.swap.max"), "0", signal);
    }
    return { cgroupParent, version, paths: [dir] };
  }

  const paths: string[] = [];
  for (const controller of V1_CONTROLLERS) {
    const hierarchy = path.join(root, controller);
    if (!(await exists(hierarchy))) {
      if (controller === "cpu" || controller === "memory") {
        throw new DeviceCgroupError(`the ${controller} cgroup hierarchy is not mounted at ${hierarchy}`);
      }
      continue;
    }
    const dir = path.join(hierarchy, cgroupParent);
    await ensureDir(dir);
    paths.push(dir);
    if (controller === "cpu") {
      await write(path.join(dir, "cpu.cfs_period_us"), String(CPU_PERIOD_US), signal);
      await write(path.join(dir, "cpu.cfs_quota_us"), String(quotaUs), signal);
    }
    if (controller === "memory") {
      // Hierarchical accounting is what makes the cap cover the children. Kernels since 5.x have
      // it always on (the file reads 1 and ignores writes); older ones need it set before children.
      const hierarchyFile = path.join(dir, "memory.use_hierarchy");
      if ((await exists(hierarchyFile)) && (await readNumber(hierarchyFile)) !== 1) {
        await write(hierarchyFile, "1", signal);
      }
      const limitFile = path.join(dir, "memory.limit_in_bytes");
      const swapFile = path.join(dir, "memory.memsw.limit_in_bytes");
      const hasSwap = await exists(swapFile);
      // memsw >= limit at every instant: raise memsw first when growing, lower it last when shrinking.
      const currentLimit = await readNumber(limitFile);
      if (hasSwap && bytes > currentLimit) await write(swapFile, String(bytes), signal);
      await write(limitFile, String(bytes), signal);
      if (hasSwap && bytes <= currentLimit) await write(swapFile, String(bytes), signal);
    }
  }
  return { cgroupParent, version, paths };
}

/**
 * Removes the device's cgroup from every hierarchy (runc also created it in the ones Shoal does not
 * limit: cpuset, devices, freezer...), then the shared `shoal` directory when it is empty. Missing
 * is fine; a cgroup that still has containers fails with a retryable DeviceCgroupError.
 */
export async function removeDeviceCgroup(options: DeviceCgroupOptions): Promise<void> {
  const { deviceId, root = DEFAULT_CGROUP_ROOT, signal } = options;
  const cgroupParent = deviceCgroupParent(deviceId);
  const version = await detectCgroupVersion(root);
  const hierarchies =
    version === 2
      ? [root]
      : (await readdir(root, { withFileTypes: true }))
          .filter((entry) => entry.isDirectory())
          .map((entry) => path.join(root, entry.name));
  for (const hierarchy of hierarchies) {
    signal?.throwIfAborted();
    const dir = path.join(hierarchy, cgroupParent);
    try {
      await rmdir(dir);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "ENOENT") continue;
      if (code === "EBUSY" || code === "ENOTEMPTY") {
        throw new DeviceCgroupError(
          `cgroup ${dir} still has containers or children; remove the device's containers first`,
          { cause: error, retryable: true },
        );
      }
      throw translate(`remove cgroup ${dir}`, error);
    }
    try {
      await rmdir(path.join(hierarchy, SHOAL_CGROUP_DIR));
    } catch {
      // Other devices still use it, or it never existed: both fine.
    }
  }
}
