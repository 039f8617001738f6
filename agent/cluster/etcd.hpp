// An etcd v3 client over the gRPC-JSON gateway every etcd member serves on its client URL
// (POST /v3/kv/range, /v3/kv/put, /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke).
// Why the gateway and not gRPC: Debian packages libgrpc++ but not etcd's .proto files for C++, so
// gRPC would mean vendoring and generating etcd's API; the gateway is the same API in JSON, which
// resmgr already parses with nlohmann/json, over libcurl. Each call tries the endpoints in turn,
// starting with the last that answered, so a stopped member costs one refused connection.
// Answers are outside input: every field is checked; a malformed answer is an EtcdError.
// May call: cluster/membership (KeyValue), cluster/curl_library.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/membership.hpp"
#include "resmgr/model.hpp"

namespace resmgr::cluster {

// No member answered (refused, timed out, or only errors that another member may not have).
struct EtcdUnavailable : std::runtime_error {
    using std::runtime_error::runtime_error;
};
// A member answered and refused, or answered something that is not etcd's JSON.
struct EtcdError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct HttpAnswer {
    long status = 0;
    std::string body;
};

// One HTTP POST; throws EtcdUnavailable when no answer came (connection refused, timeout).
class Transport {
public:
    virtual ~Transport() = default;
    virtual HttpAnswer post(const std::string& url, const std::string& body, Millis timeout) = 0;
};

// libcurl (opened on first use: cluster/curl_library.hpp), one easy handle reused (keep-alive);
// for one thread. Answers past 4 MiB are cut off and refused (nothing resmgr reads is near that).
std::unique_ptr<Transport> make_curl_transport();

// Hand-written: etcd's JSON carries keys and values in base64, and no library resmgr links has
// a public base64 (libcurl's is internal). decode: nullopt for text that is not base64.
std::string base64_encode(std::string_view bytes);
std::optional<std::string> base64_decode(std::string_view text);

// The answers' parsers, pure (tested on literals). int64 fields come as strings (proto3 JSON).
std::int64_t parse_lease_grant(const nlohmann::json& answer);
// The TTL left, 0 when the lease is gone (etcd omits a zero TTL).
std::int64_t parse_keepalive(const nlohmann::json& answer);
std::vector<KeyValue> parse_range(const nlohmann::json& answer);

// A transaction's outcome: whether its comparison held, and the key as it is when it did not
// (read in the same transaction), absent when the key does not exist.
struct TxnOutcome {
    bool succeeded = false;
    std::optional<KeyValue> current;
};
TxnOutcome parse_txn(const nlohmann::json& answer);
// The ranges a transaction read, in order (range_prefixes).
std::vector<std::vector<KeyValue>> parse_txn_ranges(const nlohmann::json& answer);

class EtcdClient {
public:
    EtcdClient(std::vector<std::string> endpoints, std::unique_ptr<Transport> transport, Millis timeout);

    std::int64_t grant_lease(Millis ttl);
    std::int64_t keep_alive(std::int64_t lease); // the TTL left; 0: the lease is gone
    void revoke(std::int64_t lease);
    void put(const std::string& key, const std::string& value, std::int64_t lease = 0);
    std::vector<KeyValue> range_prefix(const std::string& prefix);
    // Transactions on one key: put when the key does not exist; put (new value and lease) when
    // its value is still `expected`; delete when its value is still `expected`.
    TxnOutcome create_if_absent(const std::string& key, const std::string& value, std::int64_t lease);
    TxnOutcome replace_if_value(const std::string& key, const std::string& expected, const std::string& value, std::int64_t lease);
    TxnOutcome delete_if_value(const std::string& key, const std::string& expected);
    // Puts every key when none of them exists (all or none).
    bool create_all_if_absent(const std::vector<std::string>& keys, const std::string& value, std::int64_t lease);
    // Every key under each prefix, read in one transaction: one revision, one round trip.
    std::vector<std::vector<KeyValue>> range_prefixes(const std::vector<std::string>& prefixes);
    std::optional<KeyValue> get(const std::string& key);
    // Optimistic concurrency: makes every put when every key of `unchanged` still has the
    // mod_revision given (0: still absent). When one changed meanwhile, `read_back` is read in
    // the same transaction (a lost answer of an applied one is then recognised by its value).
    struct Put {
        std::string key, value;
        std::int64_t lease = 0;
    };
    TxnOutcome put_if_unchanged(const std::vector<std::pair<std::string, std::int64_t>>& unchanged, const std::vector<Put>& puts,
                                const std::string& read_back);
    void delete_key(const std::string& key);

    const std::vector<std::string>& endpoints() const { return endpoints_; }
    const std::string& current_endpoint() const { return endpoints_[current_]; }

private:
    nlohmann::json call(const std::string& path, const nlohmann::json& request);

    std::vector<std::string> endpoints_;
    std::unique_ptr<Transport> transport_;
    Millis timeout_;
    size_t current_ = 0;
};

} // namespace resmgr::cluster
