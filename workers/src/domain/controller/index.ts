/**
 * The resource controller: from the limits each container has now and what it used over the last
 * control period, the limits it should have next, inside its band and inside the device's capacity.
 * Pure: no I/O, no clock (the caller passes `at`), so every rule below is a table test.
 *
 * Per container, per resource, three numbers are computed:
 * - `want`: what the container's own rule asks for (raise when throttled or near OOM, lower after a
 *   run of idle periods, else keep);
 * - `need`: what it must keep when others want more: for a starved container its `want` (with the
 *   fast path, only once it has been starved for cpuStarvedIntervals; before, its current limit: a
 *   "tentative" raise, granted from free capacity and idle slack only), for one that is not, its
 *   usage plus headroom (idle slack is reclaimed at once under contention: the slow lowering is only
 *   for a device with room to spare);
 * - `floor`: below this it would not run as promised: the band's min (CPU), or the band's min and
 *   working set / memoryHighRatio (memory: lower would push it into reclaim or OOM).
 * Then, per resource: grant every `want` if the sum fits the capacity; else take slack down to
 * `need`, then cut tentative raises back to `need`, then shrink towards `floor`, lowest priority
 * first in each step; if even the floors do not fit, evict the lowest-priority placement and start
 * over without it.
 *
 * Invariants (tested): every limit is within [band min, min(band max, capacity)], and the limits of
 * the containers kept sum to at most the capacity.
 *
 * Two entry points share these rules: `decide()` once per control period (every resource, every
 * rule), and `decideFast()` between periods, every fastPeriodMs (CPU only: it raises a container
 * throttled now, taking idle slack from the others or shrinking lower-priority ones, and does
 * nothing else). With the fast path on, both judge "starved now" and "idle slack" from the
 * container's recent CPU samples (`cpuSamples`, see `recentCpu`), not from the whole last period: a
 * period-long average still shows the burst that ended half a second ago, and keeps the ended
 * burst's container looking busy while its neighbour's burst starts.
 */
export * from "./params";
export * from "./measurements";
export * from "./state";
export * from "./decisions";
export { comparePriority } from "./allocation";
export { decide, decideFast } from "./control";
