/*
 * shoal/demo-loadgen: a load generator with a CPU and memory profile set by environment variables,
 * for the fleet demo, the resource-manager tests and the benchmarks.
 *
 * It counts the work it has done (iterations of a fixed integer-mixing kernel), so a benchmark can
 * tell how much useful work an app got done under a given CPU quota, not just how busy it looked.
 * Every STATS_INTERVAL_MS it prints one JSON line to stdout and rewrites STATS_FILE with the same
 * line (atomically, via rename), so the numbers can be read with `docker logs` or `docker exec cat`.
 *
 * Environment (all optional; bad values exit 2 with a message naming the variable):
 *   PROFILE            steady | steps | bursts                                   (steady)
 *   CPU_MILLICORES     CPU to burn at full level, 0..64000; >1000 uses more threads (500)
 *   MEMORY_MIB         extra memory to hold at full level, 0..65536 MiB           (0)
 *   MEMORY_STEP_MIB    memory grows/shrinks by at most this many MiB per second, 1..65536 (64)
 *   PHASE_S            steps: seconds per step of the 1/4,2/4,3/4,4/4,3/4,2/4 staircase (10)
 *   BURST_PERIOD_S     bursts: period of the square wave in seconds                (10)
 *   BURST_DUTY         bursts: fraction of the period at full level, 0..1          (0.3)
 *   IDLE_MILLICORES    bursts: CPU between bursts                                  (50)
 *   IDLE_MEMORY_MIB    bursts: memory between bursts                               (0)
 *   DURATION_S         exit 0 after this many seconds; 0 runs until SIGTERM        (0)
 *   STATS_FILE         file rewritten with the latest stats line; "" disables      (/tmp/stats.json)
 *   STATS_INTERVAL_MS  period of the stats lines, 100..60000                       (1000)
 *
 * Each stats line: {"event":"stats","t":<s since start>,"ts":<unix ms>,"profile":...,
 *   "level":<0..1>,"targetMillicores":..,"targetMiB":..,"iterations":<total>,
 *   "iterationsPerS":..,"rssMiB":..,"heldMiB":..,"cpuS":<process CPU seconds>}
 * The first line has "event":"start" with the configuration, the last "event":"stop".
 *
 * SIGTERM and SIGINT stop it within one 100 ms slice, after a final stats line. It needs no
 * capabilities and no writable path except STATS_FILE's directory.
 *
 * Build: gcc -O2 -static -pthread -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SLICE_NS 100000000L /* duty-cycle slice: short enough for smooth CPU use, long enough to be cheap */
#define MIB (1024L * 1024L)
#define MAX_THREADS 64
#define MAX_MEMORY_MIB 65536L

enum profile { STEADY, STEPS, BURSTS };

static struct {
  enum profile profile;
  const char *profile_name;
  long cpu_millicores;
  long memory_mib;
  long memory_step_mib;
  double phase_s;
  double burst_period_s;
  double burst_duty;
  long idle_millicores;
  long idle_memory_mib;
  double duration_s;
  const char *stats_file;
  long stats_interval_ms;
} cfg;

static volatile sig_atomic_t stop_requested = 0;
static struct timespec started;
static int nthreads = 1;
static uint64_t iterations[MAX_THREADS * 8] __attribute__((aligned(64)));
static char **chunks;
static long held_mib = 0;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void die(const char *name, const char *value, const char *allowed) {
  fprintf(stderr, "loadgen: %s=\"%s\" is not valid; %s\n", name, value, allowed);
  exit(2);
}

static long env_long(const char *name, long fallback, long lo, long hi) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') return fallback;
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (errno != 0 || *end != '\0' || x < lo || x > hi) {
    char allowed[96];
    snprintf(allowed, sizeof allowed, "use an integer from %ld to %ld", lo, hi);
    die(name, v, allowed);
  }
  return x;
}

static double env_double(const char *name, double fallback, double lo, double hi) {
  const char *v = getenv(name);
  if (v == NULL || *v == '\0') return fallback;
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (errno != 0 || *end != '\0' || !isfinite(x) || x < lo || x > hi) {
    char allowed[96];
    snprintf(allowed, sizeof allowed, "use a number from %g to %g", lo, hi);
    die(name, v, allowed);
  }
  return x;
}

static void load_config(void) {
  const char *p = getenv("PROFILE");
  if (p == NULL || *p == '\0' || strcmp(p, "steady") == 0) cfg.profile = STEADY, cfg.profile_name = "steady";
  else if (strcmp(p, "steps") == 0) cfg.profile = STEPS, cfg.profile_name = "steps";
  else if (strcmp(p, "bursts") == 0) cfg.profile = BURSTS, cfg.profile_name = "bursts";
  else die("PROFILE", p, "use steady, steps or bursts");
  cfg.cpu_millicores = env_long("CPU_MILLICORES", 500, 0, 64000);
  cfg.memory_mib = env_long("MEMORY_MIB", 0, 0, MAX_MEMORY_MIB);
  cfg.memory_step_mib = env_long("MEMORY_STEP_MIB", 64, 1, MAX_MEMORY_MIB);
  cfg.phase_s = env_double("PHASE_S", 10, 0.1, 86400);
  cfg.burst_period_s = env_double("BURST_PERIOD_S", 10, 0.2, 86400);
  cfg.burst_duty = env_double("BURST_DUTY", 0.3, 0, 1);
  cfg.idle_millicores = env_long("IDLE_MILLICORES", 50, 0, 64000);
  cfg.idle_memory_mib = env_long("IDLE_MEMORY_MIB", 0, 0, MAX_MEMORY_MIB);
  cfg.duration_s = env_double("DURATION_S", 0, 0, 31536000);
  const char *f = getenv("STATS_FILE");
  cfg.stats_file = f == NULL ? "/tmp/stats.json" : f;
  cfg.stats_interval_ms = env_long("STATS_INTERVAL_MS", 1000, 100, 60000);
}

static double since_start(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - started.tv_sec) + (double)(now.tv_nsec - started.tv_nsec) / 1e9;
}

/* The profile as a function of time: the CPU (millicores) and memory (MiB) to aim for at t. */
static double level_at(double t) {
  static const double staircase[] = {0.25, 0.5, 0.75, 1.0, 0.75, 0.5};
  switch (cfg.profile) {
    case STEPS:
      return staircase[(long)(t / cfg.phase_s) % 6];
    case BURSTS:
      return fmod(t, cfg.burst_period_s) < cfg.burst_duty * cfg.burst_period_s ? 1.0 : 0.0;
    default:
      return 1.0;
  }
}

static long target_millicores(double t) {
  double level = level_at(t);
  if (cfg.profile == BURSTS && level == 0.0) return cfg.idle_millicores;
  return lround(level * (double)cfg.cpu_millicores);
}

static long target_mib(double t) {
  double level = level_at(t);
  if (cfg.profile == BURSTS && level == 0.0) return cfg.idle_memory_mib;
  return lround(level * (double)cfg.memory_mib);
}

/* One unit of work: 1024 rounds of xorshift64* mixing. The result feeds the next call, so the
 * compiler cannot drop or hoist it. */
static uint64_t work_unit(uint64_t x) {
  for (int i = 0; i < 1024; i++) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    x *= 0x2545F4914F6CDD1DULL;
  }
  return x;
}

static void *worker(void *arg) {
  long id = (long)arg;
  uint64_t x = 0x9E3779B97F4A7C15ULL + (uint64_t)id;
  struct timespec slice_start;
  clock_gettime(CLOCK_MONOTONIC, &slice_start);
  while (!stop_requested) {
    double t = since_start();
    long per_thread = target_millicores(t) / nthreads;
    if (per_thread > 1000) per_thread = 1000;
    long busy_ns = per_thread * (SLICE_NS / 1000);
    struct timespec busy_until = slice_start;
    busy_until.tv_nsec += busy_ns;
    while (busy_until.tv_nsec >= 1000000000L) busy_until.tv_sec++, busy_until.tv_nsec -= 1000000000L;
    /* Busy until the wall-clock end of the busy part: under a CPU quota the thread is throttled
     * inside this window and gets fewer iterations done, which is exactly what we want to count. */
    for (;;) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (stop_requested || now.tv_sec > busy_until.tv_sec ||
          (now.tv_sec == busy_until.tv_sec && now.tv_nsec >= busy_until.tv_nsec))
        break;
      x = work_unit(x);
      __atomic_store_n(&iterations[id * 8], iterations[id * 8] + 1, __ATOMIC_RELAXED);
    }
    slice_start.tv_nsec += SLICE_NS;
    while (slice_start.tv_nsec >= 1000000000L) slice_start.tv_sec++, slice_start.tv_nsec -= 1000000000L;
    /* If we fell behind (throttled for longer than a slice), restart the grid from now. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > slice_start.tv_sec || (now.tv_sec == slice_start.tv_sec && now.tv_nsec > slice_start.tv_nsec))
      slice_start = now;
    else
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &slice_start, NULL);
  }
  /* Keep x alive without printing it. */
  __asm__ volatile("" : : "r"(x));
  return NULL;
}

static uint64_t total_iterations(void) {
  uint64_t sum = 0;
  for (int i = 0; i < nthreads; i++) sum += __atomic_load_n(&iterations[i * 8], __ATOMIC_RELAXED);
  return sum;
}

/* Moves the held memory towards `target` by at most `max_step` MiB, in 1 MiB chunks whose every page
 * is written (non-zero, distinct per chunk) so they are resident and cannot be merged. */
static void adjust_memory(long target, long max_step) {
  long step = 0;
  while (held_mib < target && step < max_step) {
    char *p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    for (long off = 0; off < MIB; off += 4096) p[off] = (char)(held_mib + off / 4096 + 1);
    chunks[held_mib++] = p;
    step++;
  }
  while (held_mib > target && step < max_step) {
    munmap(chunks[--held_mib], MIB);
    step++;
  }
}

static double rss_mib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) return -1;
  long size = 0, resident = 0;
  int n = fscanf(f, "%ld %ld", &size, &resident);
  fclose(f);
  if (n != 2) return -1;
  return (double)resident * (double)sysconf(_SC_PAGESIZE) / (double)MIB;
}

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_stats_file(const char *line) {
  static int warned = 0;
  if (cfg.stats_file[0] == '\0') return;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", cfg.stats_file);
  FILE *f = fopen(tmp, "w");
  if (f != NULL && fputs(line, f) >= 0 && fclose(f) == 0 && rename(tmp, cfg.stats_file) == 0) return;
  if (!warned) {
    fprintf(stderr, "loadgen: cannot write STATS_FILE=\"%s\" (%s); stats go to stdout only\n", cfg.stats_file, strerror(errno));
    warned = 1;
  }
}

static void emit(const char *event, uint64_t *last_iter, double *last_t) {
  double t = since_start();
  struct timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  uint64_t iters = total_iterations();
  double dt = t - *last_t;
  double rate = dt > 0 ? (double)(iters - *last_iter) / dt : 0;
  char line[1024];
  snprintf(line, sizeof line,
           "{\"event\":\"%s\",\"t\":%.3f,\"ts\":%lld,\"profile\":\"%s\",\"level\":%.2f,\"targetMillicores\":%ld,"
           "\"targetMiB\":%ld,\"iterations\":%llu,\"iterationsPerS\":%.0f,\"rssMiB\":%.1f,\"heldMiB\":%ld,\"cpuS\":%.3f}\n",
           event, t, (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000, cfg.profile_name, level_at(t),
           target_millicores(t), target_mib(t), (unsigned long long)iters, rate, rss_mib(), held_mib, cpu_seconds());
  fputs(line, stdout);
  fflush(stdout);
  write_stats_file(line);
  *last_iter = iters;
  *last_t = t;
}

int main(void) {
  load_config();
  setvbuf(stdout, NULL, _IOLBF, 0);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  /* No SA_RESTART: a pending sleep returns early so we stop within one slice. */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  long peak_mib = cfg.memory_mib > cfg.idle_memory_mib ? cfg.memory_mib : cfg.idle_memory_mib;
  chunks = calloc((size_t)(peak_mib > 0 ? peak_mib : 1), sizeof *chunks);
  if (chunks == NULL) {
    fprintf(stderr, "loadgen: cannot allocate the chunk table for %ld MiB\n", peak_mib);
    return 1;
  }
  long peak_cpu = cfg.cpu_millicores > cfg.idle_millicores ? cfg.cpu_millicores : cfg.idle_millicores;
  nthreads = (int)((peak_cpu + 999) / 1000);
  if (nthreads < 1) nthreads = 1;
  if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;

  clock_gettime(CLOCK_MONOTONIC, &started);
  printf("{\"event\":\"start\",\"profile\":\"%s\",\"cpuMillicores\":%ld,\"memoryMiB\":%ld,\"memoryStepMiB\":%ld,"
         "\"phaseS\":%g,\"burstPeriodS\":%g,\"burstDuty\":%g,\"idleMillicores\":%ld,\"idleMemoryMiB\":%ld,"
         "\"durationS\":%g,\"threads\":%d,\"statsFile\":\"%s\",\"statsIntervalMs\":%ld,\"pid\":%d,\"uid\":%d}\n",
         cfg.profile_name, cfg.cpu_millicores, cfg.memory_mib, cfg.memory_step_mib, cfg.phase_s, cfg.burst_period_s,
         cfg.burst_duty, cfg.idle_millicores, cfg.idle_memory_mib, cfg.duration_s, nthreads, cfg.stats_file,
         cfg.stats_interval_ms, (int)getpid(), (int)getuid());

  pthread_t threads[MAX_THREADS];
  for (long i = 0; i < nthreads; i++) {
    if (pthread_create(&threads[i], NULL, worker, (void *)i) != 0) {
      fprintf(stderr, "loadgen: cannot start worker thread %ld\n", i);
      return 1;
    }
  }

  /* Main thread: memory follows the profile every slice, stats every interval. */
  uint64_t last_iter = 0;
  double last_t = 0;
  long ticks_per_stats = cfg.stats_interval_ms * 1000000L / SLICE_NS;
  long per_tick_step = (cfg.memory_step_mib + 9) / 10;
  struct timespec next = started;
  for (long tick = 1; !stop_requested; tick++) {
    adjust_memory(target_mib(since_start()), per_tick_step);
    next.tv_nsec += SLICE_NS;
    while (next.tv_nsec >= 1000000000L) next.tv_sec++, next.tv_nsec -= 1000000000L;
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    if (stop_requested) break;
    if (tick % ticks_per_stats == 0) emit("stats", &last_iter, &last_t);
    if (cfg.duration_s > 0 && since_start() >= cfg.duration_s) stop_requested = 1;
  }
  for (int i = 0; i < nthreads; i++) pthread_join(threads[i], NULL);
  emit("stop", &last_iter, &last_t);
  return 0;
}
