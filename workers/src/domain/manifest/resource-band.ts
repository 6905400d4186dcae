import { parseCpuMillicores, parseMemoryMiB } from "./quantity";
import type { ManifestBody, ResourceBand } from "./types";

/** The resource band as integers, the form the chain stores (millicores and MiB). */
export function resourceBand(manifest: Pick<ManifestBody, "resources">): ResourceBand {
  const { cpu, memory } = manifest.resources;
  return {
    cpuMillicoresMin: parseCpuMillicores(cpu.min, "resources.cpu.min"),
    cpuMillicoresMax: parseCpuMillicores(cpu.max, "resources.cpu.max"),
    memoryMiBMin: parseMemoryMiB(memory.min, "resources.memory.min"),
    memoryMiBMax: parseMemoryMiB(memory.max, "resources.memory.max"),
  };
}
