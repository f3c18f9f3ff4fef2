#pragma once
/// Environment lookups go through this type, so code that reads the environment (shard detection, bundle
/// location) is tested with a map instead of the process environment.
#include <functional>

namespace dg {

/// Like std::getenv: the value of a variable, or nullptr when it is not set.
using EnvLookup = std::function<const char*(const char*)>;

}  // namespace dg
