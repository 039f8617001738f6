// The benches' cgroup2 mount: /sys/fs/cgroup on a pure v2 host, /sys/fs/cgroup/unified on a
// hybrid one; empty when there is none (the bench then says it needs one).
#pragma once

#include <sys/vfs.h>

#include <linux/magic.h>

#include <string>

inline std::string cgroup2_mount() {
    struct statfs fs{};
    for (const char* path : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"})
        if (::statfs(path, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) return path;
    return {};
}
