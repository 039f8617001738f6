// Small helpers shared by the unit tests.
#pragma once

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "resmgr/model.hpp"
#include "resmgr/protocol.hpp"

namespace resmgr {

// A fresh directory removed (with its contents) when the test ends.
class TempDir {
public:
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "resmgr-test-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

// A plain running allocation for the state tests: 1.5 CPUs (or `cpu`), 512 MiB, uid 1000,
// admitted 2025-01-15T11:30:00Z for an hour.
inline Allocation sample_allocation(const std::string& id, double cpu = 1.5) {
    Allocation a;
    a.allocation_id = id;
    a.workflow_id = "wf";
    a.requester = "test";
    a.timestamp = *parse_timestamp("2025-01-15T11:30:00Z");
    a.resources.cpu_cores = cpu;
    a.resources.memory_bytes = 512ULL << 20;
    a.owner = {1000, 99};
    a.expires_at = a.timestamp + std::chrono::hours(1);
    return a;
}

// The error code `f` throws as ApiError; INTERNAL_ERROR when it throws none.
inline ErrorCode code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ApiError& e) {
        return e.code;
    }
    return ErrorCode::INTERNAL_ERROR;
}

// Random damage to JSON documents, for robustness tests. mutate() changes one place somewhere
// inside the document (objects and arrays are descended into at random): a value is replaced by
// one of `odd`, a key is dropped, or, with `add_unknown_keys`, an unknown key is added.
class JsonMutator {
public:
    JsonMutator(unsigned seed, std::vector<nlohmann::json> odd, bool add_unknown_keys)
        : rng_(seed), odd_(std::move(odd)), add_unknown_keys_(add_unknown_keys) {}
    // 0 .. n-1, from the same stream, for the test's own random choices.
    size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
    const nlohmann::json& odd_value() { return odd_[pick(odd_.size())]; }
    void mutate(nlohmann::json& doc) {
        if (doc.is_object() && !doc.empty() && pick(4) > 0) {
            auto it = std::next(doc.begin(), static_cast<long>(pick(doc.size())));
            switch (pick(5)) {
            case 0: doc.erase(it.key()); return;
            case 1:
                if (add_unknown_keys_) {
                    doc["unexpected_" + std::to_string(pick(3))] = odd_value();
                    return;
                }
                [[fallthrough]];
            default: mutate(it.value()); return;
            }
        }
        if (doc.is_array() && !doc.empty() && pick(4) > 0) return mutate(doc[pick(doc.size())]);
        doc = odd_value();
    }

private:
    std::mt19937 rng_;
    std::vector<nlohmann::json> odd_;
    bool add_unknown_keys_;
};

} // namespace resmgr
