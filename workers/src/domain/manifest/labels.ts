import { safeJson } from "./manifest-error";
import manifestSchema from "./manifest.schema.json";
import { MAX_REQUIRED_LABELS } from "./validate";

/**
 * Device and deployment labels ("region=eu-west"), checked by the grammar a manifest's
 * `requiredLabels` uses: a label a manifest could not require would never match anything.
 */
const LABEL_SCHEMA = manifestSchema.$defs.requiredLabels.items;
const LABEL = new RegExp(LABEL_SCHEMA.pattern, "u");

/** What is wrong with a set of labels, as a sentence without the field name; undefined when valid. */
export function labelsProblem(labels: readonly string[]): string | undefined {
  if (labels.length > MAX_REQUIRED_LABELS)
    return `${labels.length} labels are too many; give at most ${MAX_REQUIRED_LABELS}`;
  const keys = new Map<string, string>();
  for (const label of labels) {
    // safeJson: the label is echoed to a terminal, and may hold escape sequences.
    if (!LABEL.test(label)) return `${safeJson(label)} is not a label; use ${LABEL_SCHEMA["x-allowed"]}`;
    const key = label.slice(0, label.indexOf("="));
    const first = keys.get(key);
    if (first !== undefined)
      return `${safeJson(label)} repeats the key ${safeJson(key)} (also ${safeJson(first)}); give each key at most once`;
    keys.set(key, label);
  }
  return undefined;
}

/** "a=1, b=2" -> ["a=1", "b=2"]: comma separated, blanks ignored. */
export function splitLabels(text: string): string[] {
  return text
    .split(",")
    .map((label) => label.trim())
    .filter(Boolean);
}
