// An etcd that answers from a script, for the cluster's unit tests: each post takes the next
// answer (nullopt: no member answered), and the URLs and bodies asked are kept for the test.
#pragma once

#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "cluster/etcd.hpp"

namespace resmgr::cluster {

class ScriptedTransport : public Transport {
public:
    std::deque<std::optional<HttpAnswer>> script;
    std::vector<std::string> urls, bodies;
    HttpAnswer post(const std::string& url, const std::string& body, Millis) override {
        urls.push_back(url);
        bodies.push_back(body);
        if (script.empty()) throw EtcdUnavailable(url + ": nothing scripted");
        auto next = script.front();
        script.pop_front();
        if (!next) throw EtcdUnavailable(url + ": Couldn't connect to server");
        return *next;
    }
};

} // namespace resmgr::cluster
