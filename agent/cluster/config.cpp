#include "cluster/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "resmgr/protocol.hpp"

namespace resmgr::cluster {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& field, const std::string& expected) {
    throw ApiError(ErrorCode::INVALID_REQUEST, field + ": " + expected);
}

bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'; }

std::string check_endpoint(std::string url, const std::string& field) {
    while (!url.empty() && url.back() == '/') url.pop_back();
    if (url.rfind("https://", 0) == 0) bad(field, "https endpoints are not supported yet (" + url + "); use the members' http client URLs");
    if (url.rfind("http://", 0) != 0) bad(field, "expected an http://HOST:PORT URL of an etcd member, got \"" + url + "\"");
    const std::string authority = url.substr(7);
    if (authority.empty() || authority.find('/') != std::string::npos || authority.find_first_of(" \t\n@?#") != std::string::npos)
        bad(field, "expected an http://HOST:PORT URL without a path, got \"" + url + "\"");
    return url;
}

} // namespace

json ClusterConfig::to_json() const {
    return {{"etcd", endpoints}, {"node_name", node_name}, {"lease_ttl", format_duration(lease_ttl)}, {"shared_paths", shared_paths},
            {"max_agents", max_agents}};
}

std::vector<std::string> parse_endpoints(std::string_view list, const std::string& field) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= list.size()) {
        const size_t comma = std::min(list.find(',', start), list.size());
        std::string item(list.substr(start, comma - start));
        if (item.empty()) bad(field, "an empty endpoint in \"" + std::string(list) + "\"");
        out.push_back(check_endpoint(item, field));
        start = comma + 1;
    }
    return out;
}

Millis parse_lease_ttl(const json& value, const std::string& field) {
    auto ttl = value.is_string() ? parse_duration(value.get<std::string>()) : std::nullopt;
    if (!ttl || *ttl < kMinLeaseTtl || *ttl > kMaxLeaseTtl) bad(field, "expected a duration from 2s to 1h, e.g. \"10s\", got " + value.dump());
    return *ttl;
}

void check_node_name(const std::string& name, const std::string& field) {
    if (name.empty() || name.size() > 63 || !std::all_of(name.begin(), name.end(), name_char))
        bad(field, "expected 1-63 letters, digits, '.', '_' or '-', got \"" + name + "\"");
}

std::string default_node_name() {
    char host[256] = {};
    std::string name;
    if (::gethostname(host, sizeof host - 1) == 0)
        for (const char* p = host; *p && name.size() < 63; ++p)
            if (name_char(*p)) name.push_back(*p);
    return name.empty() ? "node" : name;
}

ClusterConfig parse_cluster_config(const json& section) {
    ClusterConfig config;
    if (section.is_null()) return config;
    if (!section.is_object()) bad("cluster", "expected an object");
    for (const auto& [key, _] : section.items())
        if (key != "etcd" && key != "node_name" && key != "lease_ttl" && key != "shared_paths" && key != "max_agents")
            bad("cluster." + key, "unknown key (etcd, node_name, lease_ttl, shared_paths, max_agents)");
    if (auto it = section.find("etcd"); it != section.end()) {
        if (!it->is_array() || it->empty()) bad("cluster.etcd", "expected a non-empty array of http://HOST:PORT URLs");
        for (size_t i = 0; i < it->size(); ++i) {
            const std::string field = "cluster.etcd[" + std::to_string(i) + "]";
            if (!(*it)[i].is_string()) bad(field, "expected a string");
            config.endpoints.push_back(check_endpoint((*it)[i].get<std::string>(), field));
        }
    }
    if (auto it = section.find("node_name"); it != section.end()) {
        if (!it->is_string()) bad("cluster.node_name", "expected a string");
        config.node_name = it->get<std::string>();
        check_node_name(config.node_name, "cluster.node_name");
    }
    if (auto it = section.find("lease_ttl"); it != section.end()) config.lease_ttl = parse_lease_ttl(*it);
    if (auto it = section.find("shared_paths"); it != section.end()) {
        if (!it->is_array()) bad("cluster.shared_paths", "expected an array of absolute paths");
        for (size_t i = 0; i < it->size(); ++i) {
            const auto& p = (*it)[i];
            if (!p.is_string() || p.get<std::string>().empty() || p.get<std::string>()[0] != '/')
                bad("cluster.shared_paths[" + std::to_string(i) + "]", "expected an absolute path");
            // As normalize() writes the files it compares them with: no "." or "..", no trailing '/'.
            std::string dir = std::filesystem::path(p.get<std::string>()).lexically_normal().string();
            while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
            config.shared_paths.push_back(dir);
        }
    }
    if (auto it = section.find("max_agents"); it != section.end()) config.max_agents = parse_max_agents(*it);
    return config;
}

int parse_max_agents(const json& value, const std::string& field) {
    if (!value.is_number_integer() || value.get<long long>() < 0 || value.get<long long>() > kMaxClusterAgents)
        bad(field, "expected a whole number of agents from 0 (no cluster-wide pool) to " + std::to_string(kMaxClusterAgents) + ", got " + value.dump());
    return value.get<int>();
}

std::string join_endpoints(const std::vector<std::string>& endpoints) {
    std::string out;
    for (const auto& e : endpoints) out += (out.empty() ? "" : ", ") + e;
    return out;
}

} // namespace resmgr::cluster
