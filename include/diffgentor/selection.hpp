#pragma once
/// Row selection: --filter_rows and deterministic sharding. Sharding splits the full filtered
/// manifest, never the pending list, so restarts and staggered starts never move a row to another
/// shard (docs/batch-runner.md, "Selection order").
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "diffgentor/env.hpp"

namespace dg {

/// `--filter_rows`: comma-separated items, each an index (`5`) or a half-open range of indices
/// (`0:100` = 0..99, `100:` = 100 and up, `:50` = below 50). Selects by the row's index value.
struct RowFilter {
  struct Range {
    std::optional<int64_t> begin, end;  ///< [begin, end); unset = unbounded
  };
  std::vector<Range> items;
  bool contains(int64_t index) const;
};

/// Throws UsageError naming --filter_rows on bad syntax.
RowFilter parse_row_filter(const std::string& text);

struct Shard {
  int rank = 0;
  int count = 1;
  std::string source = "default";  ///< "flags", "torchrun", "slurm-array", "slurm", "kubernetes" or "default"
};

/// Flags win; else torchrun (RANK/WORLD_SIZE), a Slurm array (SLURM_ARRAY_TASK_ID/_COUNT/_MIN), a Slurm
/// step (SLURM_PROCID/SLURM_NTASKS), or a Kubernetes indexed job (JOB_COMPLETION_INDEX, with
/// --num_nodes for the count). Throws UsageError for inconsistent values.
Shard resolve_shard(std::optional<int> node_rank, std::optional<int> num_nodes, const EnvLookup& env);

/// The [begin, end) positions of `total` rows that belong to `shard` (contiguous, balanced blocks).
std::pair<std::size_t, std::size_t> shard_range(std::size_t total, const Shard& shard);

}  // namespace dg
