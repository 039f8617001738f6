#include "cluster/curl_library.hpp"

#include <dlfcn.h>

#include <mutex>
#include <string>

#include "cluster/etcd.hpp"

namespace resmgr::cluster {

namespace {

constexpr const char* kSoname = "libcurl.so.4"; // Debian's libcurl4 (the ABI the headers of libcurl4-openssl-dev describe)

template <typename Fn>
void resolve(void* handle, const char* soname, const char* name, Fn& out) {
    void* symbol = ::dlsym(handle, name);
    if (!symbol) throw EtcdUnavailable(std::string(soname) + " has no " + name);
    out = reinterpret_cast<Fn>(symbol);
}

} // namespace

CurlLibrary open_curl_library(const char* soname) {
    void* handle = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char* why = ::dlerror();
        throw EtcdUnavailable(std::string("the cluster needs libcurl, which cannot be loaded (") + (why ? why : soname) +
                              "); install Debian's libcurl4 package");
    }
    // Never dlclose'd: the process keeps the library for as long as it talks to etcd.
    CurlLibrary lib{};
    resolve(handle, soname, "curl_global_init", lib.global_init);
    resolve(handle, soname, "curl_easy_init", lib.easy_init);
    resolve(handle, soname, "curl_easy_cleanup", lib.easy_cleanup);
    resolve(handle, soname, "curl_easy_reset", lib.easy_reset);
    resolve(handle, soname, "curl_easy_setopt", lib.easy_setopt);
    resolve(handle, soname, "curl_easy_perform", lib.easy_perform);
    resolve(handle, soname, "curl_easy_getinfo", lib.easy_getinfo);
    resolve(handle, soname, "curl_easy_strerror", lib.easy_strerror);
    resolve(handle, soname, "curl_slist_append", lib.slist_append);
    resolve(handle, soname, "curl_slist_free_all", lib.slist_free_all);
    if (lib.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw EtcdUnavailable(std::string(soname) + ": curl_global_init failed");
    return lib;
}

const CurlLibrary& curl_library() {
    static std::once_flag once;
    static CurlLibrary lib{};
    static std::string failure;
    std::call_once(once, [] {
        try {
            lib = open_curl_library(kSoname);
        } catch (const EtcdUnavailable& e) {
            failure = e.what();
        }
    });
    if (!failure.empty()) throw EtcdUnavailable(failure);
    return lib;
}

} // namespace resmgr::cluster
