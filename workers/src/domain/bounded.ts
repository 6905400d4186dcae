/**
 * Long-lived collections that stay bounded however long the worker runs: a cache that forgets its
 * oldest entry past a size, and a set of ids kept as ranges (ids that arrive mostly in order, such
 * as stopped deployments, cost one range, not one entry each).
 */

/** Sets `key` in `map`, first dropping the oldest entries (insertion order) so it holds at most `max`. */
export function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  while (map.size >= max) map.delete(map.keys().next().value as K);
  map.set(key, value);
}

/** A set of non-negative integers stored as sorted, disjoint, non-adjacent [first, last] ranges. */
export class IdRanges {
  private readonly ranges: Array<[number, number]> = [];

  /** Ranges held: the memory it takes, whatever the number of ids. */
  get rangeCount(): number {
    return this.ranges.length;
  }

  has(id: number): boolean {
    const i = this.indexAfter(id) - 1;
    return i >= 0 && id <= this.ranges[i][1];
  }

  add(id: number): void {
    // The range starting at or before id, if any, and the one after it.
    const after = this.indexAfter(id);
    const before = after - 1;
    const prev = before >= 0 ? this.ranges[before] : undefined;
    const next = after < this.ranges.length ? this.ranges[after] : undefined;
    if (prev !== undefined && id <= prev[1]) return;
    const joinsPrev = prev !== undefined && prev[1] === id - 1;
    const joinsNext = next !== undefined && next[0] === id + 1;
    if (joinsPrev && joinsNext) {
      prev[1] = next[1];
      this.ranges.splice(after, 1);
    } else if (joinsPrev) prev[1] = id;
    else if (joinsNext) next[0] = id;
    else this.ranges.splice(after, 0, [id, id]);
  }

  /** The index of the first range that starts after `id`. */
  private indexAfter(id: number): number {
    let lo = 0;
    let hi = this.ranges.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ranges[mid][0] <= id) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
