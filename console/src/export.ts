/**
 * The timeline's exports: JSON exactly as `placement:history --json` prints it (the same module
 * builds the rows and the text), and CSV with the same columns in the same order.
 */
import { timelineJson } from "../../tasks/lib/timeline";
import { timelineCsv } from "./model";

export { timelineCsv };

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
