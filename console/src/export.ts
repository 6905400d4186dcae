/**
 * The timeline's exports: JSON exactly as `placement:history --json` prints it (the same module
 * builds the rows and the text), and CSV with the same columns in the same order.
 */
import { timelineJson, type TimelineRow } from "../../tasks/lib/timeline";

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

export { timelineJson };

export function download(name: string, type: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
