// Crash-safe state files.
#include "state/state_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "resmgr/json.hpp"
#include "resmgr/protocol.hpp"

namespace resmgr::state {
namespace {

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& path) {
    throw StateError(what + " " + path.string() + ": " + std::strerror(errno));
}

constexpr int kStateVersion = 1;

} // namespace

void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
    auto dir = path.parent_path();
    auto tmp = dir / ("." + path.filename().string() + ".tmp");
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) fail("cannot create", tmp);
    for (size_t off = 0; off < content.size();) {
        ssize_t n = ::write(fd, content.data() + off, content.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            errno = err;
            fail("cannot write", tmp);
        }
        off += static_cast<size_t>(n);
    }
    if (::fsync(fd) < 0) {
        int err = errno;
        ::close(fd);
        errno = err;
        fail("cannot fsync", tmp);
    }
    if (::close(fd) < 0) fail("cannot close", tmp);
    if (::rename(tmp.c_str(), path.c_str()) < 0) fail("cannot rename into place", path);
    // The rename is only durable once the directory entry is.
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) fail("cannot open directory", dir);
    int rc = ::fsync(dfd);
    int err = errno;
    ::close(dfd);
    errno = err;
    if (rc < 0) fail("cannot fsync directory", dir);
}

StateStore::StateStore(std::filesystem::path dir) : dir_(std::move(dir)) {
    for (const char* sub : {"", "current_state", "monitoring", "policies", "optimization"}) {
        auto p = sub[0] ? dir_ / sub : dir_;
        if (::mkdir(p.c_str(), 0750) < 0 && errno != EEXIST) fail("cannot create state directory", p);
    }
}

void StateStore::save_allocations(const std::vector<Allocation>& allocations, TimePoint now) {
    nlohmann::json list = nlohmann::json::array();
    for (auto& a : allocations) list.push_back(to_json(a));
    nlohmann::json doc{{"version", kStateVersion}, {"updated", format_timestamp(now)}, {"allocations", list}};
    write_file_atomic(allocations_path(), dump_text(doc, 2) + "\n");
}

std::vector<Allocation> StateStore::load_allocations() const {
    auto path = allocations_path();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec) && !ec) return {};
    std::ifstream in(path);
    if (!in) throw StateError("cannot read state file " + path.string());
    std::stringstream text;
    text << in.rdbuf();
    const std::string hint = "; the file was left as it is: repair it, or move it aside to start without its allocations";
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(text.str());
    } catch (const nlohmann::json::parse_error& e) {
        throw StateError("state file " + path.string() + " is corrupt or truncated (" + e.what() + ")" + hint);
    }
    if (!doc.is_object() || !doc.contains("allocations") || !doc["allocations"].is_array())
        throw StateError("state file " + path.string() + " has no \"allocations\" array" + hint);
    const nlohmann::json version = doc.value("version", nlohmann::json(nullptr));
    if (!version.is_number_integer() || version.get<long long>() != kStateVersion)
        throw StateError("state file " + path.string() + " has version " + version.dump() + ", this resmgrd reads version " +
                         std::to_string(kStateVersion) + hint);
    std::vector<Allocation> out;
    size_t index = 0;
    for (auto& item : doc["allocations"]) {
        try {
            out.push_back(allocation_from_json(item));
        } catch (const ApiError& e) {
            throw StateError("state file " + path.string() + ": allocation #" + std::to_string(index) + " is invalid: " +
                             e.what() + (e.details.empty() ? "" : " (" + e.details + ")") + hint);
        } catch (const nlohmann::json::exception& e) {
            throw StateError("state file " + path.string() + ": allocation #" + std::to_string(index) + " is invalid: " + e.what() + hint);
        }
        ++index;
    }
    return out;
}

} // namespace resmgr::state
