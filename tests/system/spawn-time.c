// spawn-time N COMMAND [ARGS...]: runs COMMAND N times, one after another (posix_spawn, then
// waitpid), and prints "p50=<us> p90=<us> failures=<runs that did not exit 0>" of the wall time
// from spawn to reaped exit. The system tier's benchmark timer: timing each run with two `date`
// processes, as it did before, added ~30 ms of process start under TCG to both sides.
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>
extern char **environ;
static long long now_us(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000LL + t.tv_nsec / 1000; }
static int by_value(const void *a, const void *b) { long long x = *(const long long *)a, y = *(const long long *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: spawn-time N COMMAND [ARGS...]\n"); return 2; }
    int n = atoi(argv[1]);
    if (n < 1) { fprintf(stderr, "spawn-time: N must be >= 1\n"); return 2; }
    long long *took = calloc(n, sizeof *took);
    posix_spawn_file_actions_t quiet;
    posix_spawn_file_actions_init(&quiet);
    posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&quiet, 2, "/dev/null", O_WRONLY, 0);
    int failures = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid; int status;
        long long t0 = now_us();
        if (posix_spawnp(&pid, argv[2], &quiet, NULL, argv + 2, environ) != 0) { perror("posix_spawnp"); return 1; }
        while (waitpid(pid, &status, 0) < 0) {}
        took[i] = now_us() - t0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failures++;
    }
    qsort(took, n, sizeof *took, by_value);
    printf("p50=%lld p90=%lld failures=%d\n", took[n / 2], took[n * 9 / 10], failures);
    return failures ? 1 : 0;
}
