/* The cheapest program an exec storm can run: no dynamic loader, no libc, one exit(0) system
 * call. fork+exec of /bin/true costs ~330 us here, most of it ld.so mapping libc; this leaves
 * the kernel's exec path (and the probes on it) as the cost. x86-64 only (bench_bpf_exec falls
 * back to /bin/true elsewhere). */
#if defined(__x86_64__)
void _start(void) {
    __asm__ volatile("mov $60, %eax\n\txor %edi, %edi\n\tsyscall");
}
#else
int main(void) { return 0; }
#endif
