// SecurityHost: a private resmgrd (DaemonHost) and two unprivileged users created for the test
// and removed after it, whose clients reach the daemon's socket: the attacker's seat of issue
// "Local users can crash, hijack and block resmgrd". Clients run as a user through setpriv.
#pragma once

#include "build_paths.hpp"
#include <grp.h>
#include <pwd.h>

#include <memory>

#include "daemon_fixture.hpp"

namespace resmgr::host {

// A user of its own (useradd -M -U), removed with its group on destruction.
class ScopedUser {
public:
    explicit ScopedUser(const std::string& tag) : name_("rmt" + tag + std::to_string(::getpid() % 100000)) {
        run({"/usr/sbin/userdel", name_}); // a leftover of a killed run
        RunResult r = run({"/usr/sbin/useradd", "-M", "-U", "-s", "/usr/sbin/nologin", name_});
        if (r.status != 0) throw std::runtime_error("useradd " + name_ + ": " + r.err);
        const passwd* pw = ::getpwnam(name_.c_str());
        if (!pw) throw std::runtime_error("useradd made no passwd entry for " + name_);
        uid_ = pw->pw_uid;
        gid_ = pw->pw_gid;
    }
    ~ScopedUser() { run({"/usr/sbin/userdel", name_}); }
    ScopedUser(const ScopedUser&) = delete;
    ScopedUser& operator=(const ScopedUser&) = delete;

    const std::string& name() const { return name_; }
    uid_t uid() const { return uid_; }
    gid_t gid() const { return gid_; }
    // argv run as this user, with its own groups.
    std::vector<std::string> as(const std::vector<std::string>& argv) const {
        std::vector<std::string> out{"/usr/bin/setpriv", "--reuid=" + std::to_string(uid_), "--regid=" + std::to_string(gid_), "--init-groups",
                                     "--"};
        out.insert(out.end(), argv.begin(), argv.end());
        return out;
    }

private:
    std::string name_;
    uid_t uid_ = 0;
    gid_t gid_ = 0;
};

class SecurityHost : public DaemonHost {
protected:
    std::unique_ptr<ScopedUser> alice, mallory;

    void SetUp() override {
        DaemonHost::SetUp();
        if (IsSkipped() || HasFatalFailure()) return;
        try {
            alice = std::make_unique<ScopedUser>("a");
            mallory = std::make_unique<ScopedUser>("m");
        } catch (const std::exception& e) {
            GTEST_SKIP() << "security host test skipped: cannot create test users: " << e.what();
        }
        // The daemon's private directory (mkdtemp: 0700) and its socket (root's alone without
        // a resmgr group) must let the users reach it.
        ::chmod(dir.c_str(), 0755);
        restart();
    }
    // A fresh resmgrd over the same state whose socket every user reaches.
    void restart(int sig = SIGTERM) {
        stop(sig);
        start({"--socket-mode", "0666"});
    }
    void TearDown() override {
        alice.reset();
        mallory.reset();
        DaemonHost::TearDown();
    }
    RunResult cli_as(const ScopedUser& user, const std::vector<std::string>& args) {
        std::vector<std::string> argv{build_paths::resmgr_cli, "--socket", socket, "--json"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run(user.as(argv));
    }
    json cli_json_as(const ScopedUser& user, const std::vector<std::string>& args) {
        RunResult r = cli_as(user, args);
        try {
            return json::parse(r.out);
        } catch (const json::parse_error&) {
            ADD_FAILURE() << "not JSON: " << r.out << r.err;
            return {};
        }
    }
    std::string allocate_as(const ScopedUser& user, const std::string& params) {
        json r = cli_json_as(user, {"allocate", params});
        EXPECT_EQ(r["status"], "success") << r.dump(2);
        return r["result"].value("allocation_id", "");
    }
};

} // namespace resmgr::host
