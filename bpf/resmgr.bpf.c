// SPDX-License-Identifier: GPL-2.0
/* resmgr's kernel probes: process exec/fork/exit, OOM kills and run-queue latency, counted per
 * watched cgroup (cgroup v2 id) and reported through one ring buffer. Only tp_btf programs, so
 * neither tracefs nor fentry support is needed. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "resmgr_events.h"

char LICENSE[] SEC("license") = "GPL";

#define TASK_RUNNING 0

/* Set by the loader before load: fork events are frequent and rarely needed. */
const volatile bool emit_fork_events = false;
/* 0: the kernel's default, every event wakes a reader that has caught up. Otherwise at most
 * one wakeup per interval during a burst (the reader also drains on a timer of that period). */
const volatile __u64 wakeup_interval_ns = 0;
__u64 last_wakeup_ns = 0;

/* cgroup id -> stats; only cgroups present here are accounted or reported. Not preallocated
 * (the programs only look entries up; user space adds and deletes them): room for max_watched
 * entries (set by the loader) costs the bucket array (16 bytes a slot, 1 MiB at 65,536) and
 * then each entry as it is used, where preallocating 65,536 values of 240 bytes would pin ~20 MB
 * of kernel memory on every node. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096); /* resized by the loader */
	__type(key, __u64);
	__type(value, struct resmgr_cgroup_stats);
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* resized by the loader */
} events SEC(".maps");

/* Events lost because the ring buffer was full. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} dropped SEC(".maps");

/* pid -> time it became runnable, for tasks of watched cgroups. LRU: a task that exits while
 * runnable never gets its entry removed by sched_switch. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} runnable_since SEC(".maps");

static __always_inline __u64 task_cgroup_id(struct task_struct *task)
{
	return BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
}

static __always_inline void count_drop(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&dropped, &zero);

	if (n)
		*n += 1;
}

static __always_inline __u64 wakeup_flags(__u64 now)
{
	if (!wakeup_interval_ns)
		return 0;
	/* Racy across CPUs on purpose: an extra or a skipped wakeup is harmless. */
	if (now - last_wakeup_ns < wakeup_interval_ns)
		return BPF_RB_NO_WAKEUP;
	last_wakeup_ns = now;
	return BPF_RB_FORCE_WAKEUP;
}

/* A ring-buffer record for `task`, filled but for kind-specific fields; NULL (and counted as
 * dropped) when the buffer is full. */
static __always_inline struct resmgr_event *reserve_event(__u32 kind, struct task_struct *task, __u64 cgroup_id)
{
	struct resmgr_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count_drop();
		return NULL;
	}
	e->cgroup_id = cgroup_id;
	e->timestamp_ns = bpf_ktime_get_ns();
	e->kind = kind;
	e->pid = BPF_CORE_READ(task, pid);
	e->tgid = BPF_CORE_READ(task, tgid);
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->exit_status = 0;
	e->reserved = 0;
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	return e;
}

static __always_inline void submit_event(struct resmgr_event *e)
{
	bpf_ringbuf_submit(e, wakeup_flags(e->timestamp_ns));
}

static __always_inline void emit(__u32 kind, struct task_struct *task, __u64 cgroup_id)
{
	struct resmgr_event *e = reserve_event(kind, task, cgroup_id);

	if (e)
		submit_event(e);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct resmgr_cgroup_stats *stats = bpf_map_lookup_elem(&watched, &cgroup_id);

	if (!stats)
		return 0;
	__sync_fetch_and_add(&stats->execs, 1);
	/* comm is already the new program's basename here. */
	emit(RESMGR_EVENT_EXEC, task, cgroup_id);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	/* Threads share their creator's process: only count new processes. */
	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0;
	/* The child's own group: CLONE_INTO_CGROUP may place it elsewhere than the parent. */
	__u64 cgroup_id = task_cgroup_id(child);
	struct resmgr_cgroup_stats *stats = bpf_map_lookup_elem(&watched, &cgroup_id);

	if (!stats)
		return 0;
	__sync_fetch_and_add(&stats->forks, 1);
	if (emit_fork_events)
		emit(RESMGR_EVENT_FORK, child, cgroup_id);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *task)
{
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct resmgr_cgroup_stats *stats = bpf_map_lookup_elem(&watched, &cgroup_id);

	if (!stats)
		return 0;
	__u32 pid = BPF_CORE_READ(task, pid);

	bpf_map_delete_elem(&runnable_since, &pid);
	/* signal->live was decremented before this tracepoint: zero means the process is gone
	 * (portable, unlike the group_dead argument newer kernels pass). */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	__sync_fetch_and_add(&stats->exits, 1);
	struct resmgr_event *e = reserve_event(RESMGR_EVENT_EXIT, task, cgroup_id);

	if (e) {
		e->exit_status = BPF_CORE_READ(task, exit_code);
		submit_event(e);
	}
	return 0;
}

/* Linux 6.9 gave mark_victim the victim's task (and its event these fields); before, it passed
 * only the pid. Resolved by libbpf at load time. */
struct trace_event_raw_mark_victim___task_arg {
	uid_t uid;
} __attribute__((preserve_access_index));

/* The OOM killer chose a victim. The current task is whoever ran out of memory, so where the
 * kernel passes the victim, its own group is read. Older kernels pass just its pid: then the
 * group is the current task's (in a cgroup OOM, the group that hit its limit) and the record
 * describes the current task except for the victim's pid. */
SEC("tp_btf/mark_victim")
int handle_mark_victim(__u64 *ctx)
{
	struct task_struct *victim = NULL;
	__u64 cgroup_id;

	if (bpf_core_field_exists(struct trace_event_raw_mark_victim___task_arg, uid)) {
		victim = (struct task_struct *)ctx[0];
		cgroup_id = task_cgroup_id(victim);
	} else {
		cgroup_id = bpf_get_current_cgroup_id();
	}
	struct resmgr_cgroup_stats *stats = bpf_map_lookup_elem(&watched, &cgroup_id);

	if (!stats)
		return 0;
	__sync_fetch_and_add(&stats->oom_kills, 1);
	struct resmgr_event *e = reserve_event(RESMGR_EVENT_OOM_KILL, victim ? victim : bpf_get_current_task_btf(), cgroup_id);

	if (!e)
		return 0;
	if (!victim) {
		e->pid = (__u32)ctx[0];
		e->tgid = (__u32)ctx[0];
	}
	submit_event(e);
	return 0;
}

static __always_inline void mark_runnable(struct task_struct *task)
{
	__u64 cgroup_id = task_cgroup_id(task);

	if (!bpf_map_lookup_elem(&watched, &cgroup_id))
		return;
	__u32 pid = BPF_CORE_READ(task, pid);
	__u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&runnable_since, &pid, &now, BPF_ANY);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(handle_wakeup, struct task_struct *task)
{
	mark_runnable(task);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(handle_wakeup_new, struct task_struct *task)
{
	mark_runnable(task);
	return 0;
}

static __always_inline __u32 log2_bucket(__u64 us)
{
	__u32 bucket = 0;

	/* Bounded loop: the verifier needs a constant trip count. */
	for (int i = 0; i < RESMGR_RUNQ_BUCKETS - 1; i++) {
		if (us < 2)
			break;
		us >>= 1;
		bucket++;
	}
	return bucket;
}

/* Run-queue latency: the time from becoming runnable (wakeup, or preemption while still
 * runnable) to running again, added to the histogram of the task's group. */
SEC("tp_btf/sched_switch")
int BPF_PROG(handle_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	if (prev_state == TASK_RUNNING)
		mark_runnable(prev);

	__u32 pid = BPF_CORE_READ(next, pid);
	__u64 *since = bpf_map_lookup_elem(&runnable_since, &pid);

	if (!since)
		return 0;
	__u64 waited_us = (bpf_ktime_get_ns() - *since) / 1000;

	bpf_map_delete_elem(&runnable_since, &pid);
	__u64 cgroup_id = task_cgroup_id(next);
	struct resmgr_cgroup_stats *stats = bpf_map_lookup_elem(&watched, &cgroup_id);

	if (!stats)
		return 0;
	__sync_fetch_and_add(&stats->runq_count, 1);
	__sync_fetch_and_add(&stats->runq_total_us, waited_us);
	__sync_fetch_and_add(&stats->runq_buckets[log2_bucket(waited_us)], 1);
	return 0;
}
