// SPDX-License-Identifier: GPL-2.0
/* Counts tasks moved between cgroups, for the file guard: the cgroup it read for a thread stays
 * true while this count has not moved, so a refused outsider's next open need not read
 * /proc/<tid>/cgroup again. The count lives in .bss, which the loader maps into its memory:
 * reading it is a load, not a system call. Both tracepoints fire after the move is done. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

__u64 migrations = 0;

SEC("tp_btf/cgroup_attach_task")
int BPF_PROG(count_attach, struct cgroup *dst, const char *path, struct task_struct *task, bool threadgroup)
{
	__sync_fetch_and_add(&migrations, 1);
	return 0;
}

/* cgroup v1 moving the tasks of an emptied cpuset elsewhere. */
SEC("tp_btf/cgroup_transfer_tasks")
int BPF_PROG(count_transfer, struct cgroup *dst, const char *path, struct task_struct *task, bool threadgroup)
{
	__sync_fetch_and_add(&migrations, 1);
	return 0;
}
