// The one table of operations: each operation's name, the resource type it answers to, whether
// the seed names it, its parameters as a declared spec (name, type, required, range) and its
// help text. resmgrd's router binds a handler to each row; `resmgr --help`, the CLI's typo hints
// and the daemon's error hints read the names from here, so they cannot drift apart.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "resmgr/model.hpp"

namespace resmgr {

enum class ParamType { string, boolean, integer, number, object, array, duration, any };

struct ParamSpec {
    const char* name;
    ParamType type;
    bool required = false;
    std::optional<long long> min{}, max{}; // integers only
    const char* help = "";
    // What the handler uses when the parameter is absent or null; null: no default (the handler
    // says what absence means, e.g. "all allocations"). Handlers read it from here
    // (param_default), so `resmgr help` and the behaviour cannot drift apart.
    nlohmann::json fallback = nullptr;
};

// Who may call an operation at all (finer checks, e.g. an allocation's owner, stay in handlers).
enum class Caller { anyone, root };

struct OperationSpec {
    std::string name;
    // "" = the operation without a resource type; "*" = any resource type no other row names.
    std::string resource_type;
    bool seed = false;     // named by the seed (the original specification)
    bool built = true;     // false: answers UNSUPPORTED until it is built
    bool by_socket = false; // served by the socket server itself (subscribe), not the router
    Caller caller = Caller::anyone;
    // Declared parameters; `open` operations (not built yet) take any.
    std::vector<ParamSpec> params;
    bool open = false;
    std::string usage;   // the argument form, for help
    std::string summary; // one or two lines, for help
};

const std::vector<OperationSpec>& operation_catalog();
// The row for (name, resource_type): an exact resource type first, then "*", then "".
const OperationSpec* find_operation(const std::string& name, const std::string& resource_type);
// Every distinct operation name, in catalog order; and those of the seed.
std::vector<std::string> operation_names();
std::vector<std::string> seed_operations();
std::vector<std::string> built_operation_names();

// INVALID_REQUEST, in the same words for every operation, for an unknown key, a missing
// required one, a value of the wrong type or out of range. null counts as absent.
void check_params(const nlohmann::json& params, std::span<const ParamSpec> spec);

// Readers for parameters check_params has passed (absent or null: the empty value).
std::string param_string(const nlohmann::json& params, const char* key);
bool param_flag(const nlohmann::json& params, const char* key, bool absent = false);
std::optional<long long> param_integer(const nlohmann::json& params, const char* key);
std::optional<Millis> param_duration(const nlohmann::json& params, const char* key);

// The declared default of `key` (std::logic_error when `spec` declares none: a programming
// error the unit tests catch, since every default is read at least once by a test).
const nlohmann::json& param_default(std::span<const ParamSpec> spec, const char* key);
// The parameter's value when given (and not null), else its declared default.
const nlohmann::json& param_or_default(const nlohmann::json& params, std::span<const ParamSpec> spec, const char* key);

const char* to_string(ParamType type);

} // namespace resmgr
