#include "lifecycle/users.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <vector>

namespace resmgr::lifecycle {

core::UserIdentity lookup_user(std::uint32_t uid) {
    core::UserIdentity who;
    who.uid = uid;
    std::vector<char> buffer(16384);
    passwd pw{};
    passwd* found = nullptr;
    if (::getpwuid_r(uid, &pw, buffer.data(), buffer.size(), &found) != 0 || !found) return who;
    who.name = pw.pw_name;
    int count = 64;
    std::vector<gid_t> gids(static_cast<size_t>(count));
    if (::getgrouplist(pw.pw_name, pw.pw_gid, gids.data(), &count) < 0) {
        gids.resize(static_cast<size_t>(count)); // count now says how many there are
        if (::getgrouplist(pw.pw_name, pw.pw_gid, gids.data(), &count) < 0) count = 0;
    }
    gids.resize(static_cast<size_t>(count));
    for (gid_t gid : gids) {
        group gr{};
        group* g = nullptr;
        std::vector<char> gbuf(16384);
        who.gids.push_back(gid);
        who.groups.push_back(::getgrgid_r(gid, &gr, gbuf.data(), gbuf.size(), &g) == 0 && g ? std::string(gr.gr_name) : std::string());
    }
    return who;
}

} // namespace resmgr::lifecycle
