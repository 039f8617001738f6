/* Shared between guard_lsm.bpf.c and its loader (guard_lsm.cpp): the held-file map and the
 * denial records. Plain C types only. */
#ifndef RESMGR_GUARD_LSM_H
#define RESMGR_GUARD_LSM_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* An inode as the kernel names it: sb->s_dev (MKDEV: major << 20 | minor) and i_ino. */
struct guard_lsm_key {
	__u64 dev;
	__u64 ino;
};

#define GUARD_LSM_DENY_OPEN_WRITE 1u /* file_locking: refuse write opens here, not in fanotify */
#define GUARD_LSM_DENY_OPEN_READ 2u  /* strict: refuse read opens too */
#define GUARD_LSM_DENY_CHANGES 4u    /* refuse rename (away or over), unlink and truncate */

struct guard_lsm_hold {
	__u64 owner_cgroup_id; /* the holder's cgroup v2 id */
	__u32 owner_level;     /* its depth below the root ("/a/b" is 2) */
	__u32 flags;           /* GUARD_LSM_DENY_* */
};

enum guard_lsm_op { GUARD_LSM_OPEN_WRITE = 1, GUARD_LSM_OPEN_READ, GUARD_LSM_RENAME, GUARD_LSM_UNLINK, GUARD_LSM_TRUNCATE };

struct guard_lsm_denial {
	__u64 dev;
	__u64 ino;
	__u64 cgroup_id;
	__u32 tgid;
	__u32 tid;
	__u32 op; /* enum guard_lsm_op */
	char comm[16];
};

#endif
