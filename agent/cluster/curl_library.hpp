// libcurl, opened with dlopen(3) the first time this node talks to etcd, not linked.
// Why: libcurl.so.4 brings ~30 libraries (OpenSSL, GnuTLS, Kerberos, LDAP, SSH, RTMP...) whose
// relocated pages cost every resmgrd ~5.4 MiB of RSS at start (measured with /proc/PID/smaps,
// 2026-12-06), clustered or not, and most nodes run without a cluster. systemd opens its optional
// libraries the same way (src/shared/*-util.c, dlopen_many_sym_or_warn).
// May call: libcurl (its header for the types; the symbols through dlsym), libc's dl* functions.
#pragma once

#include <curl/curl.h>

namespace resmgr::cluster {

// The entry points resmgr calls, resolved from the loaded library.
struct CurlLibrary {
    decltype(&::curl_global_init) global_init;
    decltype(&::curl_easy_init) easy_init;
    decltype(&::curl_easy_cleanup) easy_cleanup;
    decltype(&::curl_easy_reset) easy_reset;
    decltype(&::curl_easy_setopt) easy_setopt;
    decltype(&::curl_easy_perform) easy_perform;
    decltype(&::curl_easy_getinfo) easy_getinfo;
    decltype(&::curl_easy_strerror) easy_strerror;
    decltype(&::curl_slist_append) slist_append;
    decltype(&::curl_slist_free_all) slist_free_all;
};

// Opens `soname`, resolves the entry points and calls curl_global_init. Throws EtcdUnavailable
// naming the file and the package when it cannot be opened or lacks a symbol.
CurlLibrary open_curl_library(const char* soname);

// libcurl.so.4, opened once per process (thread-safe); a failure is thrown again on later calls.
const CurlLibrary& curl_library();

} // namespace resmgr::cluster
