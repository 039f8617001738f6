/* The critical CPU step of bench/vm_pressure.sh: a fixed amount of integer work (ROUNDS million
 * rounds of an LCG), so its wall time shows how much CPU it got. Prints "WORK <ms>". */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    long rounds = (argc > 1 ? atol(argv[1]) : 200) * 1000000L;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    volatile unsigned long x = 1;
    for (long i = 0; i < rounds; i++) x = x * 6364136223846793005UL + 1442695040888963407UL;
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("WORK %ld\n", (b.tv_sec - a.tv_sec) * 1000L + (b.tv_nsec - a.tv_nsec) / 1000000L);
    return (int)(x & 0) ;
}
