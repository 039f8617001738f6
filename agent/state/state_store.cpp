// Crash-safe state files: the snapshot and the journal of the allocations (see state_store.hpp).
#include "state/state_store.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "resmgr/json.hpp"
#include "resmgr/protocol.hpp"

namespace resmgr::state {
namespace {

[[noreturn]] void fail(const std::string& what, const std::filesystem::path& path) {
    throw StateError(what + " " + path.string() + ": " + std::strerror(errno));
}

constexpr int kStateVersion = 1;

// ---- The journal's format (state_store.hpp) ----
constexpr std::string_view kJournalMagic{"RMJRNL1\n", 8};
constexpr size_t kRecordHeader = 16;
constexpr std::uint32_t kMaxPayload = 64u << 20; // far above any allocation's JSON
constexpr std::uint8_t kUpsert = 1, kRemove = 2;
constexpr std::uint8_t kLastOfBatch = 1;

std::uint32_t crc(std::string_view bytes) {
    return static_cast<std::uint32_t>(::crc32(::crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data()),
                                              static_cast<uInt>(bytes.size())));
}

void put_u32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint32_t get_u32(std::string_view in, size_t at) {
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(in[at + static_cast<size_t>(i)]);
    return v;
}

void append_record(std::string& out, std::uint8_t kind, std::uint8_t flags, std::string_view payload) {
    const size_t at = out.size();
    put_u32(out, static_cast<std::uint32_t>(payload.size()));
    out.push_back(static_cast<char>(kind));
    out.push_back(static_cast<char>(flags));
    out.append(2, '\0');
    put_u32(out, crc(payload));
    put_u32(out, crc(std::string_view(out).substr(at, 12)));
    out.append(payload);
}

struct Record {
    size_t offset = 0;
    std::uint8_t kind = 0;
    std::uint8_t flags = 0;
    std::string_view payload;
};

// The record at `at`, or why there is none there.
std::optional<Record> record_at(std::string_view data, size_t at, std::string* why) {
    auto bad = [&](std::string reason) -> std::optional<Record> {
        if (why) *why = std::move(reason);
        return std::nullopt;
    };
    if (data.size() - at < kRecordHeader)
        return bad("a record header cut short (" + std::to_string(data.size() - at) + " of " + std::to_string(kRecordHeader) + " bytes)");
    if (crc(data.substr(at, 12)) != get_u32(data, at + 12)) return bad("a record header whose checksum does not match");
    Record r;
    r.offset = at;
    r.kind = static_cast<std::uint8_t>(data[at + 4]);
    r.flags = static_cast<std::uint8_t>(data[at + 5]);
    const std::uint32_t length = get_u32(data, at);
    if ((r.kind != kUpsert && r.kind != kRemove) || length > kMaxPayload || data[at + 6] != 0 || data[at + 7] != 0)
        return bad("a record header with an unknown kind or length");
    if (data.size() - at - kRecordHeader < length)
        return bad("a record cut short (" + std::to_string(data.size() - at - kRecordHeader) + " of " + std::to_string(length) +
                   " payload bytes)");
    r.payload = data.substr(at + kRecordHeader, length);
    if (crc(r.payload) != get_u32(data, at + 8)) return bad("a record whose checksum does not match its " + std::to_string(length) + " bytes");
    return r;
}

// What is in a journal: its whole batches, and where they end.
struct Scan {
    std::vector<Record> records; // of whole batches, in order
    size_t end = 0;              // the journal's valid length; the rest is a torn tail
    std::string torn;            // what the torn tail is, when there is one
};

const std::string kJournalHint =
    "; the files were left as they are: repair or move aside the journal (its changes since the snapshot are lost), then start again";

// Throws StateError when a record before the tail is corrupt: something valid follows it, so it
// was written, synced and acknowledged before the damage.
Scan scan_journal(const std::filesystem::path& path, std::string_view data) {
    Scan scan;
    if (data.size() < kJournalMagic.size()) {
        if (data != kJournalMagic.substr(0, data.size()))
            throw StateError("journal " + path.string() + " at byte offset 0: not a resmgr journal" + kJournalHint);
        if (!data.empty()) scan.torn = "a file header cut short";
        return scan; // empty, or its header was being written
    }
    if (data.substr(0, kJournalMagic.size()) != kJournalMagic)
        throw StateError("journal " + path.string() + " at byte offset 0: not a resmgr journal (or a version this resmgrd does not read)" +
                         kJournalHint);
    scan.end = kJournalMagic.size();
    std::vector<Record> batch;
    size_t at = scan.end;
    while (at < data.size()) {
        std::string why;
        auto r = record_at(data, at, &why);
        if (!r) {
            // The tail, unless a valid record follows: then acknowledged changes were damaged.
            for (size_t later = at + 1; later + kRecordHeader <= data.size(); ++later)
                if (record_at(data, later, nullptr))
                    throw StateError("journal " + path.string() + " is corrupt at byte offset " + std::to_string(at) + ": " + why +
                                     ", and valid records follow it (the first at byte offset " + std::to_string(later) + ")" + kJournalHint);
            scan.torn = why + " at byte offset " + std::to_string(at);
            break;
        }
        batch.push_back(*r);
        at += kRecordHeader + r->payload.size();
        if (r->flags & kLastOfBatch) {
            scan.records.insert(scan.records.end(), batch.begin(), batch.end());
            batch.clear();
            scan.end = at;
        }
    }
    if (scan.torn.empty() && !batch.empty())
        scan.torn = "a batch of " + std::to_string(batch.size()) + " record(s) without its last one at byte offset " + std::to_string(scan.end);
    return scan;
}

std::string read_fd(int fd, const std::filesystem::path& path) {
    std::string data;
    char buf[1 << 16];
    for (off_t at = 0;;) {
        ssize_t n = ::pread(fd, buf, sizeof buf, at);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("cannot read", path);
        if (n == 0) return data;
        data.append(buf, static_cast<size_t>(n));
        at += n;
    }
}

void write_all(int fd, std::string_view bytes, const std::filesystem::path& path) {
    for (size_t off = 0; off < bytes.size();) {
        ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail("cannot write", path);
        off += static_cast<size_t>(n);
    }
}

void fsync_dir(const std::filesystem::path& dir) {
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) fail("cannot open directory", dir);
    int rc = ::fsync(dfd);
    int err = errno;
    ::close(dfd);
    errno = err;
    if (rc < 0) fail("cannot fsync directory", dir);
}

// Cuts the journal at `end` (its torn tail) and makes that durable.
void cut_tail(int fd, const std::filesystem::path& path, size_t end, const std::string& why) {
    spdlog::warn("journal {}: cutting off {} (a change that was never acknowledged), keeping the first {} bytes", path.string(), why, end);
    if (::ftruncate(fd, static_cast<off_t>(end)) < 0) fail("cannot cut the torn tail of", path);
    if (::fdatasync(fd) < 0) fail("cannot fdatasync", path);
}

} // namespace

void write_file_atomic(const std::filesystem::path& path, std::string_view content) {
    write_file_atomic(path, [&](const PutText& put) { put(content); });
}

void write_file_atomic(const std::filesystem::path& path, const std::function<void(const PutText& put)>& produce) {
    auto dir = path.parent_path();
    auto tmp = dir / ("." + path.filename().string() + ".tmp");
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) fail("cannot create", tmp);
    auto fail_closing = [&](const char* what) {
        int err = errno;
        ::close(fd);
        fd = -1;
        ::unlink(tmp.c_str());
        errno = err;
        fail(what, tmp);
    };
    auto write_all = [&](std::string_view bytes) {
        for (size_t off = 0; off < bytes.size();) {
            ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) fail_closing("cannot write");
            off += static_cast<size_t>(n);
        }
    };
    constexpr size_t kChunk = 64 << 10;
    std::string pending;
    try {
        produce([&](std::string_view piece) {
            if (pending.size() + piece.size() > kChunk) {
                write_all(pending);
                pending.clear();
            }
            if (piece.size() > kChunk) write_all(piece);
            else pending.append(piece);
        });
        write_all(pending);
    } catch (...) {
        if (fd >= 0) { // else fail_closing closed it
            ::close(fd);
            ::unlink(tmp.c_str());
        }
        throw;
    }
    if (::fsync(fd) < 0) fail_closing("cannot fsync");
    if (::close(fd) < 0) fail("cannot close", tmp);
    if (::rename(tmp.c_str(), path.c_str()) < 0) fail("cannot rename into place", path);
    // The rename is only durable once the directory entry is.
    fsync_dir(dir);
}

StateStore::StateStore(std::filesystem::path dir) : dir_(std::move(dir)) {
    for (const char* sub : {"", "current_state", "monitoring", "policies", "optimization"}) {
        auto p = sub[0] ? dir_ / sub : dir_;
        if (::mkdir(p.c_str(), 0750) < 0 && errno != EEXIST) fail("cannot create state directory", p);
    }
}

StateStore::~StateStore() {
    if (journal_fd_ >= 0) ::close(journal_fd_);
}

void StateStore::open_journal() {
    const auto& path = journal_path();
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) fail("cannot open", path);
    try {
        const std::string data = read_fd(fd, path);
        const Scan scan = scan_journal(path, data);
        if (scan.end < kJournalMagic.size()) {
            // New (or its header was being written): start it over with the header.
            if (::ftruncate(fd, 0) < 0) fail("cannot truncate", path);
            write_all(fd, kJournalMagic, path);
            if (::fdatasync(fd) < 0) fail("cannot fdatasync", path);
            fsync_dir(path.parent_path());
            journal_end_ = kJournalMagic.size();
        } else {
            if (scan.end < data.size()) cut_tail(fd, path, scan.end, scan.torn);
            journal_end_ = scan.end;
        }
        journal_records_ = scan.records.size();
    } catch (...) {
        ::close(fd);
        throw;
    }
    journal_fd_ = fd;
}

void StateStore::record(const std::vector<Change>& changes) {
    if (changes.empty()) return;
    const auto& path = journal_path();
    if (journal_fd_ >= 0) {
        // The journal must still be the file at its path: appending to one moved aside or removed
        // would acknowledge changes that no start reads. Then only a whole snapshot can take over.
        struct stat at_path{}, open{};
        if (::stat(path.c_str(), &at_path) < 0 || ::fstat(journal_fd_, &open) < 0 || at_path.st_dev != open.st_dev ||
            at_path.st_ino != open.st_ino) {
            ::close(journal_fd_);
            journal_fd_ = -1;
            journal_lost_ = true;
        }
    }
    if (journal_lost_)
        throw StateError("journal " + path.string() +
                         " was moved or removed while resmgrd ran: changes are not recorded until the snapshot " +
                         allocations_path().string() + " can be written again");
    if (journal_fd_ < 0) open_journal();
    std::string batch;
    for (size_t i = 0; i < changes.size(); ++i) {
        const std::uint8_t flags = i + 1 == changes.size() ? kLastOfBatch : 0;
        if (changes[i].allocation) append_record(batch, kUpsert, flags, to_json(*changes[i].allocation).dump());
        else append_record(batch, kRemove, flags, changes[i].id);
    }
    try {
        write_all(journal_fd_, batch, path);
        if (!defer_sync_ && ::fdatasync(journal_fd_) < 0) fail("cannot fdatasync", path);
    } catch (const StateError&) {
        // Not recorded: take back what may have reached the file. Should that fail too, the
        // next record() reopens the journal, which cuts the unfinished batch off as a torn tail.
        const int err = errno;
        if (::ftruncate(journal_fd_, static_cast<off_t>(journal_end_)) < 0 || ::fdatasync(journal_fd_) < 0) {
            ::close(journal_fd_);
            journal_fd_ = -1;
        }
        errno = err;
        throw;
    }
    journal_end_ += batch.size();
    journal_records_ += changes.size();
    ++written_seq_;
    if (!defer_sync_) durable_seq_ = written_seq_;
}

bool StateStore::snapshot_due() const { return journal_lost_ || journal_records_ >= std::max(kSnapshotEvery, snapshot_size_); }

void StateStore::save_allocations(const std::vector<Allocation>& allocations, TimePoint now) {
    std::vector<const Allocation*> each;
    each.reserve(allocations.size());
    for (const auto& a : allocations) each.push_back(&a);
    save_allocations(each, now);
}

void StateStore::save_allocations(const std::vector<const Allocation*>& allocations, TimePoint now) {
    // Streamed an allocation at a time, as the text the whole document's dump_text(doc, 2) would
    // give: the document as one json tree and one string cost ~9 KB an allocation at once
    // (heaptrack, 10,000 allocations), and glibc kept that peak in resmgrd's RSS afterwards.
    write_file_atomic(allocations_path(), [&](const PutText& put) {
        put("{\n  \"allocations\": [");
        const char* separator = "\n    ";
        for (const Allocation* a : allocations) {
            put(separator);
            separator = ",\n    ";
            const std::string text = dump_text(to_json(*a), 2);
            for (size_t start = 0;;) { // each line of the allocation four spaces further in
                size_t end = text.find('\n', start);
                put(std::string_view(text).substr(start, end == std::string::npos ? end : end + 1 - start));
                if (end == std::string::npos) break;
                put("    ");
                start = end + 1;
            }
        }
        put(allocations.empty() ? "]" : "\n  ]");
        put(",\n  \"updated\": " + dump_text(format_timestamp(now)) + ",\n  \"version\": " + std::to_string(kStateVersion) + "\n}\n");
    });
    snapshot_size_ = allocations.size();
    durable_seq_ = written_seq_; // the snapshot, fsync'd, holds every batch written so far
    // The snapshot holds every change the journal does: empty the journal. A crash before this
    // is durable replays the journal over the new snapshot, which gives the same state (header).
    const auto& path = journal_path();
    if (journal_lost_) {
        // The snapshot holds everything: a new journal starts at the path.
        if (journal_fd_ >= 0) ::close(journal_fd_);
        journal_fd_ = -1;
        journal_lost_ = false;
    }
    if (journal_fd_ >= 0) {
        if (::ftruncate(journal_fd_, static_cast<off_t>(kJournalMagic.size())) < 0) fail("cannot truncate", path);
        journal_end_ = kJournalMagic.size();
        if (::fdatasync(journal_fd_) < 0) fail("cannot fdatasync", path);
    } else if (int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC); fd >= 0) {
        // An empty file is an empty journal; its header is written when it is next opened.
        int rc = ::ftruncate(fd, 0) < 0 ? -1 : ::fdatasync(fd);
        int err = errno;
        ::close(fd);
        errno = err;
        if (rc < 0) fail("cannot truncate", path);
    } else if (errno != ENOENT) {
        fail("cannot open", path);
    }
    journal_records_ = 0;
}

std::vector<Allocation> StateStore::load_allocations() {
    auto path = allocations_path();
    std::vector<std::optional<Allocation>> out; // in the snapshot's order, then new ones; empty: removed
    std::unordered_map<std::string, size_t> index;
    std::error_code ec;
    if (std::filesystem::exists(path, ec) || ec) {
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
        size_t i = 0;
        for (auto& item : doc["allocations"]) {
            try {
                Allocation a = allocation_from_json(item);
                index[a.allocation_id] = out.size();
                out.push_back(std::move(a));
            } catch (const ApiError& e) {
                throw StateError("state file " + path.string() + ": allocation #" + std::to_string(i) + " is invalid: " + e.what() +
                                 (e.details.empty() ? "" : " (" + e.details + ")") + hint);
            } catch (const nlohmann::json::exception& e) {
                throw StateError("state file " + path.string() + ": allocation #" + std::to_string(i) + " is invalid: " + e.what() + hint);
            }
            ++i;
        }
    }
    snapshot_size_ = out.size();

    // The journal's changes since that snapshot, checked whole before anything is cut or applied.
    // An open journal is reopened (and checked again) by the next record().
    if (journal_fd_ >= 0) ::close(journal_fd_);
    journal_fd_ = -1;
    const auto& jpath = journal_path();
    int fd = ::open(jpath.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) fail("cannot open", jpath);
    if (fd >= 0) {
        try {
            const std::string data = read_fd(fd, jpath);
            const Scan scan = scan_journal(jpath, data);
            for (const Record& r : scan.records) {
                const std::string where = "journal " + jpath.string() + " at byte offset " + std::to_string(r.offset) + ": ";
                if (r.kind == kRemove) {
                    if (auto it = index.find(std::string(r.payload)); it != index.end()) out[it->second].reset();
                    continue;
                }
                Allocation a;
                try {
                    a = allocation_from_json(nlohmann::json::parse(r.payload));
                } catch (const ApiError& e) {
                    throw StateError(where + "the allocation is invalid: " + e.what() + (e.details.empty() ? "" : " (" + e.details + ")") +
                                     kJournalHint);
                } catch (const nlohmann::json::exception& e) {
                    throw StateError(where + "the allocation is invalid: " + e.what() + kJournalHint);
                }
                auto [it, added] = index.try_emplace(a.allocation_id, out.size());
                if (added) out.emplace_back();
                out[it->second] = std::move(a);
            }
            // Only now, with everything before it valid, is the torn tail cut.
            if (!scan.torn.empty()) cut_tail(fd, jpath, scan.end, scan.torn);
            journal_records_ = scan.records.size();
        } catch (...) {
            ::close(fd);
            throw;
        }
        ::close(fd);
    } else {
        journal_records_ = 0;
    }
    std::vector<Allocation> result;
    result.reserve(out.size());
    for (auto& a : out)
        if (a) result.push_back(std::move(*a));
    out = {};
    // The snapshot's json tree (~4.5 KB an allocation) is freed by now: give its pages back, or
    // glibc keeps that peak in resmgrd's RSS for the rest of its life.
    ::malloc_trim(0);
    return result;
}

} // namespace resmgr::state
