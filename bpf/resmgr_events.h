/* Layout shared by resmgr.bpf.c and the C++ loader: ring-buffer records and per-cgroup stats.
 * Fixed-width __u64/__u32 types only (vmlinux.h's u64 breaks the C++ side). */
#ifndef RESMGR_EVENTS_H
#define RESMGR_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define RESMGR_COMM_LEN 16
/* log2 microsecond buckets: bucket i holds latencies in [2^i, 2^(i+1)) us (bucket 0: [0, 2)),
 * the last one everything from 2^23 us (~8 s) up. */
#define RESMGR_RUNQ_BUCKETS 24

enum resmgr_event_kind {
	RESMGR_EVENT_EXEC = 1,
	RESMGR_EVENT_FORK = 2,
	RESMGR_EVENT_EXIT = 3,
	RESMGR_EVENT_OOM_KILL = 4,
};

struct resmgr_event {
	__u64 cgroup_id;
	__u64 timestamp_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 kind;         /* enum resmgr_event_kind */
	__u32 pid;          /* thread id; for fork: the child's */
	__u32 tgid;
	__u32 ppid;         /* tgid of the real parent */
	__u32 exit_status;  /* wait(2) status: code << 8 | signal */
	__u32 reserved;
	char comm[RESMGR_COMM_LEN];
};

/* Value of the `watched` map: one per cgroup the loader watches, updated atomically. */
struct resmgr_cgroup_stats {
	__u64 execs;
	__u64 forks;     /* new processes, not threads */
	__u64 exits;     /* processes whose last thread exited */
	__u64 oom_kills;
	__u64 runq_count;
	__u64 runq_total_us;
	__u64 runq_buckets[RESMGR_RUNQ_BUCKETS];
};

#endif
