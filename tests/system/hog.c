/* Allocates and touches N MiB (default 256), then sleeps S seconds (default 30): the OOM killer's target. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 256;
    for (long i = 0; i < mib; i++) {
        char *p = malloc(1 << 20);
        if (!p) return 1;
        memset(p, 0x5a, 1 << 20);
    }
    sleep(argc > 2 ? (unsigned)atoi(argv[2]) : 30);
    return 0;
}
