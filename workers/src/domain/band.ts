/**
 * The resource band of an app version: the CPU and memory a replica may get, minimum to maximum.
 * One concept, two spellings: the domain's `ResourceBand` (manifest, container spec, controller)
 * and the chain's struct, which events, the Registry port, MQTT payloads and JSON carry as they
 * are (`ChainResourceBand`). Convert only here.
 */
import type { ResourceBand } from "./manifest";

export type { ResourceBand };

/** AppRegistry's `ResourceBand` struct, field for field. */
export interface ChainResourceBand {
  cpuMinMillicores: number;
  cpuMaxMillicores: number;
  memoryMinMiB: number;
  memoryMaxMiB: number;
}

/** The chain's band as it arrives: numbers, bigints or decimal strings (decoded event args, JSON). */
export type ChainBandLike = { readonly [K in keyof ChainResourceBand]?: unknown };

/** Chain (or JSON, or a decoded event's args: numbers, bigints or decimal strings) -> domain. */
export function bandFromChain(b: ChainBandLike): ResourceBand {
  return {
    cpuMillicoresMin: Number(b.cpuMinMillicores),
    cpuMillicoresMax: Number(b.cpuMaxMillicores),
    memoryMiBMin: Number(b.memoryMinMiB),
    memoryMiBMax: Number(b.memoryMaxMiB),
  };
}

/** Domain -> chain (the struct `publishVersion` takes). */
export function bandToChain(b: ResourceBand): ChainResourceBand {
  return {
    cpuMinMillicores: b.cpuMillicoresMin,
    cpuMaxMillicores: b.cpuMillicoresMax,
    memoryMinMiB: b.memoryMiBMin,
    memoryMaxMiB: b.memoryMiBMax,
  };
}

/** The chain's struct, or a JSON / event-args object, with every field a number. */
export function chainBandOf(b: ChainBandLike): ChainResourceBand {
  return bandToChain(bandFromChain(b));
}
