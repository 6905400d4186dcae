import type { ChainReader, DeviceView } from "../chain";
import type { ConsoleConfig } from "../config";
import type { Live } from "../live";

export interface AppContext {
  config: ConsoleConfig;
  chain: ChainReader;
  live: Live;
  /** The latest block the console has read. */
  head: { number: number; timestamp: number };
  /** Asks for a refresh of the current page as soon as the one running (if any) ends. */
  requestRefresh(): void;
}

/** A page: mounted once per visit, refreshed on every new block, redrawn on every live change. */
export interface Page {
  title: string;
  mount(main: HTMLElement): void;
  /** Reads the chain (at ctx.head) and redraws. */
  refresh(): Promise<void>;
  /** Redraws from what it has, with the latest live state (no chain reads). */
  redraw(): void;
}

/** Online state from the broker's retained presence, qualified by the chain's heartbeat freshness. */
export function onlineText(ctx: AppContext, deviceId: number, stale: boolean): { text: string; cls: string } {
  const chain = stale ? "heartbeat stale" : "heartbeat fresh";
  if (ctx.live.state.broker !== "connected") return { text: `unknown (no MQTT); ${chain}`, cls: "unknown" };
  const s = ctx.live.state.status.get(deviceId);
  if (s === undefined) return { text: `no presence; ${chain}`, cls: "unknown" };
  return s.status === "online"
    ? { text: `online; ${chain}`, cls: stale ? "warn" : "ok" }
    : { text: `offline (${s.reason}); ${chain}`, cls: "bad" };
}

/** Hands the chain's view of each device to the message checks (an operator change applies at once). */
export function observeDevices(ctx: AppContext, devices: readonly DeviceView[]): void {
  for (const d of devices)
    ctx.live.observe(
      d.deviceId,
      d.status === "None" ? undefined : { operator: d.operator, active: d.status === "Active" },
    );
}
