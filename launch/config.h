// The run configuration: a JSON file plus --set overrides, validated against the defaults of
// the chosen task and model so that every unknown key or mistyped value is an error naming
// the key.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace strata::launch {

using Json = nlohmann::json;

/// The full default configuration for a task ("classify" or "char_lm") and model name.
Json default_config(const std::string& task, const std::string& model);

/// Loads `path`, applies `overrides` ("train.epochs=3"; the value is parsed as JSON, else
/// taken as a string), and validates: unknown keys and values of the wrong type throw an
/// Error naming the dotted key and the accepted keys or type.
Json resolve_config(const std::string& path, const std::vector<std::string>& overrides);

/// As resolve_config, from an already parsed JSON object (tests, programmatic use).
Json resolve_config_json(const Json& user, const std::vector<std::string>& overrides);

/// Reads a required value with a clear error when it has the wrong type.
template <class T>
T get(const Json& cfg, const std::string& dotted);

}  // namespace strata::launch
