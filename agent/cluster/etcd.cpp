#include "cluster/etcd.hpp"

#include "cluster/curl_library.hpp"

#include <array>
#include <climits>

namespace resmgr::cluster {

using nlohmann::json;

namespace {

constexpr size_t kMaxAnswer = 4u << 20;
constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

class CurlTransport final : public Transport {
public:
    CurlTransport() : curl_(curl_library()) {
        handle_ = curl_.easy_init();
        if (!handle_) throw EtcdUnavailable("libcurl could not make a handle");
        headers_ = curl_.slist_append(nullptr, "Content-Type: application/json");
    }
    ~CurlTransport() override {
        curl_.slist_free_all(headers_);
        curl_.easy_cleanup(handle_);
    }
    CurlTransport(const CurlTransport&) = delete;
    CurlTransport& operator=(const CurlTransport&) = delete;

    HttpAnswer post(const std::string& url, const std::string& body, Millis timeout) override {
        Sink sink;
        curl_.easy_reset(handle_);
        curl_.easy_setopt(handle_, CURLOPT_URL, url.c_str());
        curl_.easy_setopt(handle_, CURLOPT_POST, 1L);
        curl_.easy_setopt(handle_, CURLOPT_POSTFIELDS, body.c_str());
        curl_.easy_setopt(handle_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
        curl_.easy_setopt(handle_, CURLOPT_HTTPHEADER, headers_);
        curl_.easy_setopt(handle_, CURLOPT_NOSIGNAL, 1L); // threads: no SIGALRM for timeouts
        curl_.easy_setopt(handle_, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
        curl_.easy_setopt(handle_, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout.count()));
        curl_.easy_setopt(handle_, CURLOPT_PROTOCOLS_STR, "http");
        curl_.easy_setopt(handle_, CURLOPT_WRITEFUNCTION, &CurlTransport::on_data);
        curl_.easy_setopt(handle_, CURLOPT_WRITEDATA, &sink);
        const CURLcode rc = curl_.easy_perform(handle_);
        if (rc != CURLE_OK) throw EtcdUnavailable(url + ": " + (sink.too_long ? "answer longer than 4 MiB" : curl_.easy_strerror(rc)));
        HttpAnswer answer;
        curl_.easy_getinfo(handle_, CURLINFO_RESPONSE_CODE, &answer.status);
        answer.body = std::move(sink.data);
        return answer;
    }

private:
    struct Sink {
        std::string data;
        bool too_long = false;
    };
    static size_t on_data(char* data, size_t size, size_t count, void* user) {
        auto* sink = static_cast<Sink*>(user);
        const size_t n = size * count;
        if (sink->data.size() + n > kMaxAnswer) {
            sink->too_long = true;
            return 0; // libcurl ends the transfer with CURLE_WRITE_ERROR
        }
        sink->data.append(data, n);
        return n;
    }

    const CurlLibrary& curl_;
    CURL* handle_ = nullptr;
    curl_slist* headers_ = nullptr;
};

std::int64_t int64_field(const json& j, const char* key, bool required) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        if (required) throw EtcdError(std::string("etcd's answer has no \"") + key + "\"");
        return 0;
    }
    if (it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
        throw EtcdError(std::string("etcd's answer has a \"") + key + "\" beyond 64-bit range");
    if (it->is_number_integer()) return it->get<std::int64_t>();
    if (it->is_string()) {
        const std::string& s = it->get_ref<const std::string&>();
        size_t used = 0;
        try {
            const long long v = std::stoll(s, &used);
            if (used == s.size()) return v;
        } catch (const std::exception&) {
        }
    }
    throw EtcdError(std::string("etcd's answer has a \"") + key + "\" that is not an integer");
}

std::string base64_field(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return {}; // proto3 JSON omits empty bytes
    if (!it->is_string()) throw EtcdError(std::string("etcd's answer has a \"") + key + "\" that is not a string");
    auto bytes = base64_decode(it->get<std::string>());
    if (!bytes) throw EtcdError(std::string("etcd's answer has a \"") + key + "\" that is not base64");
    return *bytes;
}

// The key just past every key that starts with `prefix` (etcd's range_end for a prefix).
std::string prefix_end(std::string prefix) {
    while (!prefix.empty()) {
        if (static_cast<unsigned char>(prefix.back()) < 0xff) {
            prefix.back() = static_cast<char>(static_cast<unsigned char>(prefix.back()) + 1);
            return prefix;
        }
        prefix.pop_back();
    }
    return std::string(1, '\0'); // every key
}

// etcd's "error" text, cut short: an answer is outside input (never dumped whole).
std::string error_text(const json& answer) {
    if (!answer.is_object()) return "(no error text)";
    auto it = answer.find("error");
    if (it == answer.end() || !it->is_string()) return "(no error text)";
    const std::string& text = it->get_ref<const std::string&>();
    return text.size() > 200 ? text.substr(0, 200) + "..." : text;
}

} // namespace

std::unique_ptr<Transport> make_curl_transport() { return std::make_unique<CurlTransport>(); }

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (size_t i = 0; i < bytes.size(); i += 3) {
        std::uint32_t chunk = static_cast<unsigned char>(bytes[i]) << 16;
        if (i + 1 < bytes.size()) chunk |= static_cast<unsigned char>(bytes[i + 1]) << 8;
        if (i + 2 < bytes.size()) chunk |= static_cast<unsigned char>(bytes[i + 2]);
        out.push_back(kAlphabet[(chunk >> 18) & 63]);
        out.push_back(kAlphabet[(chunk >> 12) & 63]);
        out.push_back(i + 1 < bytes.size() ? kAlphabet[(chunk >> 6) & 63] : '=');
        out.push_back(i + 2 < bytes.size() ? kAlphabet[chunk & 63] : '=');
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 != 0) return std::nullopt;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        std::uint32_t chunk = 0;
        int pad = 0;
        for (size_t k = 0; k < 4; ++k) {
            const char c = text[i + k];
            std::uint32_t v = 0;
            if (c == '=' && i + 4 == text.size() && k >= 2) {
                ++pad;
            } else {
                const size_t at = kAlphabet.find(c);
                if (at == std::string_view::npos || pad) return std::nullopt;
                v = static_cast<std::uint32_t>(at);
            }
            chunk = chunk << 6 | v;
        }
        out.push_back(static_cast<char>(chunk >> 16 & 0xff));
        if (pad < 2) out.push_back(static_cast<char>(chunk >> 8 & 0xff));
        if (pad < 1) out.push_back(static_cast<char>(chunk & 0xff));
    }
    return out;
}

std::int64_t parse_lease_grant(const json& answer) {
    if (auto it = answer.find("error"); it != answer.end() && it->is_string() && !it->get<std::string>().empty())
        throw EtcdError("etcd refused the lease: " + it->get<std::string>());
    const std::int64_t id = int64_field(answer, "ID", true);
    if (id == 0) throw EtcdError("etcd granted lease 0");
    return id;
}

std::int64_t parse_keepalive(const json& answer) {
    auto it = answer.find("result");
    if (it == answer.end() || !it->is_object()) throw EtcdError("etcd's keepalive answer has no \"result\"");
    return int64_field(*it, "TTL", false);
}

std::vector<KeyValue> parse_range(const json& answer) {
    std::vector<KeyValue> out;
    auto it = answer.find("kvs");
    if (it == answer.end() || it->is_null()) return out; // no key in the range
    if (!it->is_array()) throw EtcdError("etcd's range answer has a \"kvs\" that is not an array");
    for (const auto& kv : *it) {
        if (!kv.is_object()) throw EtcdError("etcd's range answer holds a key that is not an object");
        out.push_back({base64_field(kv, "key"), base64_field(kv, "value"), int64_field(kv, "lease", false), int64_field(kv, "mod_revision", false)});
    }
    return out;
}

TxnOutcome parse_txn(const json& answer) {
    TxnOutcome out;
    if (auto it = answer.find("succeeded"); it != answer.end() && !it->is_null()) {
        if (!it->is_boolean()) throw EtcdError("etcd's txn answer has a \"succeeded\" that is not a boolean");
        out.succeeded = it->get<bool>();
    }
    if (out.succeeded) return out;
    auto responses = answer.find("responses");
    if (responses == answer.end() || responses->is_null()) return out;
    if (!responses->is_array()) throw EtcdError("etcd's txn answer has \"responses\" that are not an array");
    for (const auto& r : *responses) {
        if (!r.is_object()) throw EtcdError("etcd's txn answer holds a response that is not an object");
        if (auto range = r.find("response_range"); range != r.end()) {
            if (!range->is_object()) throw EtcdError("etcd's txn answer has a response_range that is not an object");
            auto kvs = parse_range(*range);
            if (!kvs.empty()) out.current = kvs.front();
        }
    }
    return out;
}

std::vector<std::vector<KeyValue>> parse_txn_ranges(const json& answer) {
    std::vector<std::vector<KeyValue>> out;
    auto responses = answer.find("responses");
    if (responses == answer.end() || responses->is_null()) return out;
    if (!responses->is_array()) throw EtcdError("etcd's txn answer has \"responses\" that are not an array");
    for (const auto& r : *responses) {
        auto range = r.is_object() ? r.find("response_range") : r.end();
        if (!r.is_object() || range == r.end() || !range->is_object()) throw EtcdError("etcd's txn answer holds a response that is not a range");
        out.push_back(parse_range(*range));
    }
    return out;
}

EtcdClient::EtcdClient(std::vector<std::string> endpoints, std::unique_ptr<Transport> transport, Millis timeout)
    : endpoints_(std::move(endpoints)), transport_(std::move(transport)), timeout_(timeout) {
    if (endpoints_.empty()) throw std::invalid_argument("EtcdClient: no endpoint");
}

json EtcdClient::call(const std::string& path, const json& request) {
    const std::string body = request.dump();
    std::string problems;
    for (size_t tried = 0; tried < endpoints_.size(); ++tried) {
        const size_t at = (current_ + tried) % endpoints_.size();
        try {
            HttpAnswer answer = transport_->post(endpoints_[at] + path, body, timeout_);
            json parsed = json::parse(answer.body, nullptr, false);
            // A member without a leader or a quorum answers 5xx; another member may have both.
            if (answer.status >= 500) {
                problems += (problems.empty() ? "" : "; ") + endpoints_[at] + ": HTTP " + std::to_string(answer.status) + " " + error_text(parsed);
                continue;
            }
            current_ = at;
            if (parsed.is_discarded() || !parsed.is_object())
                throw EtcdError(endpoints_[at] + path + " answered HTTP " + std::to_string(answer.status) + " with something that is not JSON");
            if (answer.status != 200)
                throw EtcdError(endpoints_[at] + path + " refused (HTTP " + std::to_string(answer.status) + "): " + error_text(parsed));
            return parsed;
        } catch (const EtcdUnavailable& e) {
            problems += (problems.empty() ? "" : "; ") + std::string(e.what());
        }
    }
    throw EtcdUnavailable("no etcd member answered: " + problems);
}

std::int64_t EtcdClient::grant_lease(Millis ttl) {
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(ttl + std::chrono::milliseconds(999)).count();
    return parse_lease_grant(call("/v3/lease/grant", {{"TTL", seconds}}));
}

std::int64_t EtcdClient::keep_alive(std::int64_t lease) {
    return parse_keepalive(call("/v3/lease/keepalive", {{"ID", std::to_string(lease)}}));
}

void EtcdClient::revoke(std::int64_t lease) { call("/v3/lease/revoke", {{"ID", std::to_string(lease)}}); }

void EtcdClient::put(const std::string& key, const std::string& value, std::int64_t lease) {
    json request{{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    if (lease) request["lease"] = std::to_string(lease);
    call("/v3/kv/put", request);
}

std::vector<KeyValue> EtcdClient::range_prefix(const std::string& prefix) {
    return parse_range(call("/v3/kv/range", {{"key", base64_encode(prefix)}, {"range_end", base64_encode(prefix_end(prefix))}}));
}

namespace {

json put_request(const std::string& key, const std::string& value, std::int64_t lease) {
    json put{{"key", base64_encode(key)}, {"value", base64_encode(value)}};
    if (lease) put["lease"] = std::to_string(lease);
    return {{"request_put", put}};
}

json value_is(const std::string& key, const std::string& expected) {
    return {{"key", base64_encode(key)}, {"result", "EQUAL"}, {"target", "VALUE"}, {"value", base64_encode(expected)}};
}

json read_key(const std::string& key) { return {{"request_range", {{"key", base64_encode(key)}}}}; }

json absent(const std::string& key) { return {{"key", base64_encode(key)}, {"result", "EQUAL"}, {"target", "CREATE"}, {"create_revision", "0"}}; }

} // namespace

TxnOutcome EtcdClient::create_if_absent(const std::string& key, const std::string& value, std::int64_t lease) {
    return parse_txn(call("/v3/kv/txn", {{"compare", {absent(key)}}, {"success", {put_request(key, value, lease)}}, {"failure", {read_key(key)}}}));
}

TxnOutcome EtcdClient::replace_if_value(const std::string& key, const std::string& expected, const std::string& value, std::int64_t lease) {
    return parse_txn(call("/v3/kv/txn", {{"compare", {value_is(key, expected)}}, {"success", {put_request(key, value, lease)}}, {"failure", {read_key(key)}}}));
}

bool EtcdClient::create_all_if_absent(const std::vector<std::string>& keys, const std::string& value, std::int64_t lease) {
    json compare = json::array(), puts = json::array();
    for (const auto& key : keys) {
        compare.push_back(absent(key));
        puts.push_back(put_request(key, value, lease));
    }
    return parse_txn(call("/v3/kv/txn", {{"compare", compare}, {"success", puts}})).succeeded;
}

std::vector<std::vector<KeyValue>> EtcdClient::range_prefixes(const std::vector<std::string>& prefixes) {
    json reads = json::array();
    for (const auto& p : prefixes) reads.push_back({{"request_range", {{"key", base64_encode(p)}, {"range_end", base64_encode(prefix_end(p))}}}});
    auto out = parse_txn_ranges(call("/v3/kv/txn", {{"success", reads}}));
    if (out.size() != prefixes.size()) throw EtcdError("etcd's txn answer holds " + std::to_string(out.size()) + " ranges for " + std::to_string(prefixes.size()) + " reads");
    return out;
}

std::optional<KeyValue> EtcdClient::get(const std::string& key) {
    auto kvs = parse_range(call("/v3/kv/range", {{"key", base64_encode(key)}}));
    if (kvs.empty()) return std::nullopt;
    if (kvs.size() > 1 || kvs.front().key != key) throw EtcdError("etcd answered a read of one key with another");
    return kvs.front();
}

TxnOutcome EtcdClient::put_if_unchanged(const std::vector<std::pair<std::string, std::int64_t>>& unchanged, const std::vector<Put>& puts,
                                        const std::string& read_back) {
    json compare = json::array(), writes = json::array();
    for (const auto& [key, revision] : unchanged)
        compare.push_back({{"key", base64_encode(key)}, {"result", "EQUAL"}, {"target", "MOD"}, {"mod_revision", std::to_string(revision)}});
    for (const auto& p : puts) writes.push_back(put_request(p.key, p.value, p.lease));
    return parse_txn(call("/v3/kv/txn", {{"compare", compare}, {"success", writes}, {"failure", {read_key(read_back)}}}));
}

void EtcdClient::delete_key(const std::string& key) { call("/v3/kv/deleterange", {{"key", base64_encode(key)}}); }

TxnOutcome EtcdClient::delete_if_value(const std::string& key, const std::string& expected) {
    return parse_txn(call("/v3/kv/txn", {{"compare", {value_is(key, expected)}},
                                         {"success", {{{"request_delete_range", {{"key", base64_encode(key)}}}}}},
                                         {"failure", {read_key(key)}}}));
}

} // namespace resmgr::cluster
