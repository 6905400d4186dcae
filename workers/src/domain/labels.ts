/**
 * Labels: `key=value` texts a device offers and a deployment requires (a device runs a replica
 * only if it has every required label). One grammar for the manifest, the tasks and the worker;
 * the chain accepts any `key=value` of at most 64 bytes (contracts/libraries/Labels.sol), this
 * grammar is stricter so that labels stay readable and comparable.
 */

/** Key: lower-case letter, then up to 30 of [a-z0-9_.-]; value: 1 to 32 of [A-Za-z0-9_.-]. */
export const LABEL_PATTERN = /^[a-z][a-z0-9_.-]{0,30}=[A-Za-z0-9_.-]{1,32}$/;
/** At most this many labels per device or deployment (Labels.MAX_LABELS). */
export const MAX_LABELS = 8;

/** Why `labels` is not a valid label set, as one sentence naming `field`; undefined when it is. */
export function labelsProblem(field: string, labels: readonly string[]): string | undefined {
  if (labels.length > MAX_LABELS) {
    return `${field}: ${labels.length} labels is not allowed; use at most ${MAX_LABELS}`;
  }
  const keys = new Set<string>();
  for (const label of labels) {
    if (!LABEL_PATTERN.test(label)) {
      return (
        `${field}: "${label}" is not a label; use key=value pairs such as region=eu-west,tier=edge ` +
        `(key: a lower-case letter, then up to 30 of a-z 0-9 _ . -; value: 1 to 32 of A-Z a-z 0-9 _ . -)`
      );
    }
    const key = label.slice(0, label.indexOf("="));
    if (keys.has(key)) return `${field}: the key "${key}" is given twice; give each key once`;
    keys.add(key);
  }
  return undefined;
}

/** A comma-separated list (`region=eu,tier=edge`) as labels; empty items dropped. */
export function splitLabels(text: string): string[] {
  return text
    .split(",")
    .map((label) => label.trim())
    .filter(Boolean);
}
