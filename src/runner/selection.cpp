#include "diffgentor/selection.hpp"

#include <fmt/format.h>

#include "diffgentor/options.hpp"

namespace dg {

bool RowFilter::contains(int64_t index) const {
  for (const auto& r : items)
    if ((!r.begin || index >= *r.begin) && (!r.end || index < *r.end)) return true;
  return false;
}

namespace {

std::optional<int64_t> parse_bound(const std::string& filter, const std::string& s, bool allow_empty) {
  std::string t;
  for (char c : s)
    if (c != ' ') t += c;
  if (t.empty()) {
    if (allow_empty) return std::nullopt;
    throw UsageError(fmt::format("--filter_rows '{}': empty item", filter));
  }
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(t, &used, 10);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != t.size())
    throw UsageError(
        fmt::format("--filter_rows '{}': '{}' is not an integer (expected e.g. 0:100, 5,7 or 100:)", filter, s));
  return v;
}

}  // namespace

RowFilter parse_row_filter(const std::string& text) {
  RowFilter f;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const std::size_t colon = item.find(':');
    RowFilter::Range r;
    if (colon == std::string::npos) {
      r.begin = parse_bound(text, item, false);
      r.end = *r.begin + 1;
    } else {
      if (item.find(':', colon + 1) != std::string::npos)
        throw UsageError(fmt::format("--filter_rows '{}': '{}' has more than one ':'", text, item));
      r.begin = parse_bound(text, item.substr(0, colon), true);
      r.end = parse_bound(text, item.substr(colon + 1), true);
      if (r.begin && r.end && *r.end <= *r.begin)
        throw UsageError(fmt::format("--filter_rows '{}': range '{}' is empty", text, item));
    }
    f.items.push_back(r);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return f;
}

namespace {

std::optional<int> env_int(const EnvLookup& env, const char* name) {
  const char* v = env(name);
  if (!v || !*v) return std::nullopt;
  try {
    std::size_t used = 0;
    const int x = std::stoi(v, &used);
    if (used == std::string(v).size()) return x;
  } catch (const std::exception&) {
  }
  throw UsageError(fmt::format("environment variable {}='{}' is not an integer", name, v));
}

}  // namespace

Shard resolve_shard(std::optional<int> node_rank, std::optional<int> num_nodes, const EnvLookup& env) {
  std::optional<int> env_rank, env_count;
  std::string source = "default";
  if (auto r = env_int(env, "RANK"), w = env_int(env, "WORLD_SIZE"); r && w) {
    env_rank = r, env_count = w, source = "torchrun";
  } else if (auto id = env_int(env, "SLURM_ARRAY_TASK_ID"); id) {
    const auto count = env_int(env, "SLURM_ARRAY_TASK_COUNT");
    env_rank = *id - env_int(env, "SLURM_ARRAY_TASK_MIN").value_or(0);
    env_count = count, source = "slurm-array";
  } else if (auto p = env_int(env, "SLURM_PROCID"), n = env_int(env, "SLURM_NTASKS"); p && n) {
    env_rank = p, env_count = n, source = "slurm";
  } else if (auto k = env_int(env, "JOB_COMPLETION_INDEX"); k) {
    env_rank = k, source = "kubernetes";
  }
  Shard s;
  s.count = num_nodes ? *num_nodes : env_count.value_or(1);
  s.rank = node_rank ? *node_rank : (env_rank ? *env_rank : 0);
  s.source = (node_rank || num_nodes) ? (env_rank && !node_rank ? source + "+flags" : "flags") : source;
  if (source == "kubernetes" && !node_rank && !num_nodes)
    throw UsageError(
        "JOB_COMPLETION_INDEX is set (Kubernetes indexed job) but the shard count is not: pass "
        "--num_nodes with the job's completions");
  if (s.count < 1) throw UsageError(fmt::format("shard count {} (from {}) must be at least 1", s.count, s.source));
  if (s.rank < 0 || s.rank >= s.count)
    throw UsageError(fmt::format("shard rank {} is outside 0..{} (from {})", s.rank, s.count - 1, s.source));
  return s;
}

std::pair<std::size_t, std::size_t> shard_range(std::size_t total, const Shard& shard) {
  const auto n = static_cast<std::size_t>(shard.count);
  const auto r = static_cast<std::size_t>(shard.rank);
  return {total * r / n, total * (r + 1) / n};
}

}  // namespace dg
