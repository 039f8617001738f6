/* The critical latency probe of bench/vm_pressure.sh: for SECONDS, every 20 ms map 4 MiB of fresh
 * anonymous memory, touch every page, unmap it, and time that; then print how many rounds and their
 * p50/p99/max in microseconds. Fresh pages each round, so a memory-starved group shows as latency. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static long now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000L + t.tv_nsec / 1000;
}
static int by_value(const void *a, const void *b) { return (*(const long *)a > *(const long *)b) - (*(const long *)a < *(const long *)b); }

int main(int argc, char **argv) {
    long seconds = argc > 1 ? atol(argv[1]) : 20, n = 0, cap = seconds * 50 + 16;
    long *lat = calloc((size_t)cap, sizeof *lat);
    const size_t size = 4u << 20;
    long end = now_us() + seconds * 1000000L;
    while (now_us() < end && n < cap) {
        long t0 = now_us();
        char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return 1;
        for (size_t i = 0; i < size; i += 4096) p[i] = (char)i;
        munmap(p, size);
        long took = now_us() - t0;
        lat[n++] = took;
        if (took < 20000) nanosleep(&(struct timespec){0, (20000 - took) * 1000L}, NULL);
    }
    qsort(lat, (size_t)n, sizeof *lat, by_value);
    printf("PROBE rounds %ld p50_us %ld p99_us %ld max_us %ld\n", n, lat[n / 2], lat[(n * 99) / 100], lat[n - 1]);
    return 0;
}
