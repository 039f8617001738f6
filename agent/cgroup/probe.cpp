// Host probe (see probe.hpp).
#include "cgroup/probe.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace resmgr::cgroup {
namespace {

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<std::string> words(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        auto octal = [&](size_t at) { return at < s.size() && s[at] >= '0' && s[at] <= '7'; };
        if (s[i] == '\\' && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
            out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
            i += 3;
        } else {
            out += s[i];
        }
    }
    return out;
}

} // namespace

std::vector<MountEntry> parse_mountinfo(const std::string& text) {
    std::vector<MountEntry> out;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        auto f = words(line);
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        auto sep = std::find(f.begin(), f.end(), "-");
        if (f.size() < 7 || sep == f.end() || sep - f.begin() < 6 || f.end() - sep < 3) continue;
        out.push_back({unescape(f[4]), *(sep + 1), *(sep + 3)});
    }
    return out;
}

HostReport probe_host(const ProbePaths& paths) {
    HostReport r;
    bool have_v1 = false;
    for (auto& m : parse_mountinfo(read_file(paths.mountinfo))) {
        if (m.fs_type == "cgroup2" && r.cgroup2_mount.empty()) r.cgroup2_mount = m.mount_point;
        if (m.fs_type == "cgroup") {
            have_v1 = true;
            std::istringstream opts(m.super_options);
            for (std::string o; std::getline(opts, o, ',');)
                if (o != "rw" && o != "ro" && o.rfind("name=", 0) != 0 && o.find('=') == std::string::npos &&
                    std::find(r.v1_controllers.begin(), r.v1_controllers.end(), o) == r.v1_controllers.end())
                    r.v1_controllers.push_back(o);
        }
    }
    r.cgroup_mode = r.cgroup2_mount.empty() ? (have_v1 ? "v1" : "none") : (have_v1 ? "hybrid" : "v2");
    if (!r.cgroup2_mount.empty()) {
        r.controllers = words(read_file(r.cgroup2_mount + "/cgroup.controllers"));
        r.delegated = words(read_file(r.cgroup2_mount + "/cgroup.subtree_control"));
        r.default_cgroup_root = r.cgroup2_mount + "/resmgr";
        // Writable means we may create groups under the mount (root, and not a read-only mount).
        r.default_root_writable = ::access(r.cgroup2_mount.c_str(), W_OK) == 0;
    }
    struct stat st{};
    r.pid1 = words(read_file(paths.pid1_comm)).empty() ? "" : words(read_file(paths.pid1_comm)).front();
    r.systemd = ::stat(paths.run_systemd.c_str(), &st) == 0 && S_ISDIR(st.st_mode);

    if (r.systemd && r.cgroup_mode == "v2") {
        r.auto_backend = "systemd";
        r.auto_reason = "systemd is PID 1 on a pure cgroup v2 hierarchy: allocations under resmgr.slice (a delegated scope written "
                        "directly, else transient slices over D-Bus)";
    } else if (!r.cgroup2_mount.empty() && r.default_root_writable) {
        r.auto_backend = "cgroupfs";
        r.auto_reason = "writable cgroup2 hierarchy at " + r.cgroup2_mount + " without systemd managing it" +
                        (r.systemd ? " (systemd runs a " + r.cgroup_mode + " layout it does not delegate)" : "");
        std::vector<std::string> missing;
        for (auto c : {"cpu", "memory", "pids", "io"})
            if (std::find(r.controllers.begin(), r.controllers.end(), c) == r.controllers.end()) missing.push_back(c);
        if (!missing.empty()) {
            std::string list;
            for (auto& m : missing) list += (list.empty() ? "" : ", ") + m;
            r.auto_reason += "; controllers missing from it (" + list + ") so those limits are not enforced";
        }
    } else {
        r.auto_backend = "accounting";
        r.auto_reason = r.cgroup2_mount.empty() ? "no cgroup2 hierarchy is mounted" : "the cgroup2 hierarchy is not writable";
        r.auto_reason += ": admission and bookkeeping only, limits are not enforced";
    }
    return r;
}

nlohmann::json HostReport::to_json() const {
    return {{"cgroup_mode", cgroup_mode},
            {"cgroup2_mount", cgroup2_mount},
            {"controllers_available", controllers},
            {"v1_controllers", v1_controllers},
            {"systemd", systemd},
            {"pid1", pid1},
            {"delegation", {{"default_cgroup_root", default_cgroup_root},
                            {"writable", default_root_writable},
                            {"root_subtree_control", delegated}}},
            {"auto_backend", auto_backend},
            {"auto_reason", auto_reason}};
}

} // namespace resmgr::cgroup
