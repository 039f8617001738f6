// Small helpers shared by the unit tests.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

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

// The error code `f` throws as ApiError; INTERNAL_ERROR when it throws none.
inline ErrorCode code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const ApiError& e) {
        return e.code;
    }
    return ErrorCode::INTERNAL_ERROR;
}

} // namespace resmgr
