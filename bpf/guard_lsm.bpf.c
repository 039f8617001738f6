// SPDX-License-Identifier: GPL-2.0
/* BPF LSM side of resmgr's exclusive files: where the kernel runs BPF LSM programs, a held
 * file cannot be opened for writing (file_locking), renamed away or over, unlinked or truncated
 * by a process outside its holder's cgroup subtree. fanotify sees none of rename, unlink and
 * truncate before they happen; these hooks refuse them. Each refusal is reported through a
 * ring buffer. The daemon itself is let through (its tgid is set after load). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "guard_lsm.h"

char LICENSE[] SEC("license") = "GPL";

#define EPERM 1
#define FMODE_WRITE 0x2
#define O_TRUNC 01000

__u32 daemon_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct guard_lsm_key);
	__type(value, struct guard_lsm_hold);
} held SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} denials SEC(".maps");

static __always_inline struct guard_lsm_hold *hold_of(struct inode *inode, struct guard_lsm_key *key)
{
	if (!inode)
		return 0;
	key->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	key->ino = BPF_CORE_READ(inode, i_ino);
	return bpf_map_lookup_elem(&held, key);
}

/* 0 to let the current task through, -EPERM (reported) to refuse it. */
static __always_inline int judge(struct guard_lsm_hold *hold, struct guard_lsm_key *key, __u32 op)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((__u32)(id >> 32) == daemon_tgid)
		return 0;
	if (bpf_get_current_ancestor_cgroup_id(hold->owner_level) == hold->owner_cgroup_id)
		return 0; /* the holder or one of its descendants */
	struct guard_lsm_denial *d = bpf_ringbuf_reserve(&denials, sizeof(*d), 0);
	if (d) {
		d->dev = key->dev;
		d->ino = key->ino;
		d->cgroup_id = bpf_get_current_cgroup_id();
		d->tgid = id >> 32;
		d->tid = (__u32)id;
		d->op = op;
		bpf_get_current_comm(d->comm, sizeof(d->comm));
		bpf_ringbuf_submit(d, 0);
	}
	return -EPERM;
}

SEC("lsm/file_open")
int BPF_PROG(guard_file_open, struct file *file, int ret)
{
	struct guard_lsm_key key;
	struct guard_lsm_hold *hold;

	if (ret)
		return ret;
	hold = hold_of(BPF_CORE_READ(file, f_inode), &key);
	if (!hold)
		return 0;
	int writes = (BPF_CORE_READ(file, f_mode) & FMODE_WRITE) || (BPF_CORE_READ(file, f_flags) & O_TRUNC);
	if (writes && (hold->flags & GUARD_LSM_DENY_OPEN_WRITE))
		return judge(hold, &key, GUARD_LSM_OPEN_WRITE);
	if (!writes && (hold->flags & GUARD_LSM_DENY_OPEN_READ))
		return judge(hold, &key, GUARD_LSM_OPEN_READ);
	return 0;
}

SEC("lsm/inode_rename")
int BPF_PROG(guard_inode_rename, struct inode *old_dir, struct dentry *old_dentry, struct inode *new_dir,
	     struct dentry *new_dentry, int ret)
{
	struct guard_lsm_key key;
	struct guard_lsm_hold *hold;

	if (ret)
		return ret;
	/* The held file moved away, or another file moved over it. */
	hold = hold_of(BPF_CORE_READ(old_dentry, d_inode), &key);
	if (hold && (hold->flags & GUARD_LSM_DENY_CHANGES))
		return judge(hold, &key, GUARD_LSM_RENAME);
	hold = hold_of(BPF_CORE_READ(new_dentry, d_inode), &key);
	if (hold && (hold->flags & GUARD_LSM_DENY_CHANGES))
		return judge(hold, &key, GUARD_LSM_RENAME);
	return 0;
}

SEC("lsm/inode_unlink")
int BPF_PROG(guard_inode_unlink, struct inode *dir, struct dentry *dentry, int ret)
{
	struct guard_lsm_key key;
	struct guard_lsm_hold *hold;

	if (ret)
		return ret;
	hold = hold_of(BPF_CORE_READ(dentry, d_inode), &key);
	if (hold && (hold->flags & GUARD_LSM_DENY_CHANGES))
		return judge(hold, &key, GUARD_LSM_UNLINK);
	return 0;
}

SEC("lsm/path_truncate")
int BPF_PROG(guard_path_truncate, const struct path *path, int ret)
{
	struct guard_lsm_key key;
	struct guard_lsm_hold *hold;

	if (ret)
		return ret;
	hold = hold_of(BPF_CORE_READ(path, dentry, d_inode), &key);
	if (hold && (hold->flags & GUARD_LSM_DENY_CHANGES))
		return judge(hold, &key, GUARD_LSM_TRUNCATE);
	return 0;
}
