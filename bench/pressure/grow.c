/* A memory hog of bench/vm_pressure.sh that must finish correctly: grows to MIB MiB, 8 MiB every
 * STEP_MS, writing a pattern into every page; holds for HOLD seconds; then checks every page and
 * exits 0 ("GROW ok"), or 3 when a page lost its pattern. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 200, step_ms = argc > 2 ? atol(argv[2]) : 50, hold = argc > 3 ? atol(argv[3]) : 5;
    long chunks = mib / 8;
    unsigned char **chunk = calloc((size_t)chunks, sizeof *chunk);
    for (long c = 0; c < chunks; c++) {
        chunk[c] = malloc(8u << 20);
        if (!chunk[c]) return 1;
        for (size_t i = 0; i < (8u << 20); i += 4096) chunk[c][i] = (unsigned char)(c + i / 4096);
        nanosleep(&(struct timespec){step_ms / 1000, (step_ms % 1000) * 1000000L}, NULL);
    }
    sleep((unsigned)hold);
    for (long c = 0; c < chunks; c++)
        for (size_t i = 0; i < (8u << 20); i += 4096)
            if (chunk[c][i] != (unsigned char)(c + i / 4096)) return 3;
    printf("GROW ok %ld MiB\n", mib);
    return 0;
}
