/**
 * The console's pure logic (no DOM, no I/O): what the pages compute from chain rows and MQTT
 * messages before drawing them. Unit-tested in test/console/pure.test.ts.
 */
import type { TimelineRow } from "../../tasks/lib/timeline";

/** A resource-manager decision as published on `<root>/devices/<id>/resources`. */
export interface Decision {
  seq: number;
  at: string;
  deviceId: string;
  placementId: string;
  resource: string;
  from: number;
  to: number;
  reason: string;
  metric: string;
  value: number;
  threshold: number;
}

export interface Series {
  name: string;
  /** [time ms, value], in time order; the value holds until the next point. */
  points: [number, number][];
}

export const CSV_COLUMNS: readonly (keyof TimelineRow)[] = [
  "time",
  "block",
  "tx",
  "logIndex",
  "event",
  "placementId",
  "deploymentId",
  "deviceId",
  "state",
  "reason",
];

/** RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled; CRLF lines. */
export function timelineCsv(rows: readonly TimelineRow[]): string {
  const field = (v: string | number) => {
    const s = String(v);
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [CSV_COLUMNS.join(","), ...rows.map((r) => CSV_COLUMNS.map((c) => field(r[c])).join(","))]
    .map((line) => `${line}\r\n`)
    .join("");
}

/** Seconds since the placement's claim and since its previous row, for every row with a time. */
export function durations(rows: readonly TimelineRow[]): { sinceClaim?: number; sincePrevious?: number }[] {
  const claimed = new Map<number, number>();
  const previous = new Map<number, number>();
  return rows.map((r) => {
    if (r.time === "") return {};
    const t = Date.parse(r.time) / 1000;
    const out = {
      sinceClaim: claimed.has(r.placementId) ? t - claimed.get(r.placementId)! : undefined,
      sincePrevious: previous.has(r.placementId) ? t - previous.get(r.placementId)! : undefined,
    };
    if (r.event === "PlacementClaimed") claimed.set(r.placementId, t);
    previous.set(r.placementId, t);
    return out;
  });
}

/** One step series per placement and resource, starting from the first decision's old limit. */
export function decisionSeries(decisions: readonly Decision[], resource: "cpu" | "memory"): Series[] {
  const byPlacement = new Map<string, [number, number][]>();
  for (const d of decisions) {
    if (d.resource !== resource) continue;
    const t = Date.parse(d.at);
    let points = byPlacement.get(d.placementId);
    if (points === undefined) {
      points = [[t, d.from]];
      byPlacement.set(d.placementId, points);
    }
    points.push([t, d.to]);
  }
  return [...byPlacement].map(([placementId, points]) => ({ name: `placement ${placementId}`, points }));
}
