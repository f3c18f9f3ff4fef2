#pragma once
/// Working with a sharded output folder without running a model (docs/scale-out.md): `diffgentor merge` joins the
/// shard journals into results.csv and failures.csv and clears lock files no process holds; `diffgentor status`
/// counts, shard by shard, the rows done, failed and still to do. Torch-free.
#include <cstddef>
#include <string>
#include <vector>

#include "diffgentor/env.hpp"
#include "diffgentor/model_table.hpp"
#include "diffgentor/options.hpp"

namespace dg {

struct MergeSummary {
  std::vector<std::string> sources;  ///< results.csv and the shard journals read
  std::size_t results = 0;           ///< rows in the merged results.csv
  std::size_t failures = 0;          ///< rows in the merged failures.csv (failed and not done since)
  /// Rows recorded by more than one file with different settings or outputs: "index 7: a.csv and b.csv differ in
  /// seed (10 vs 11); kept the one finished last".
  std::vector<std::string> conflicts;
  std::vector<std::string> removed_locks;  ///< `*.lock` files of the folder, when no process held any
  std::vector<std::string> held_locks;     ///< lock files a running process holds (then every lock file stays)
};

/// Merges `results_path` (results.csv or --output_csv) and its shard journals into it, then failures.csv without
/// the rows done since (their image exists under `output_dir`), as the last shard of a run does; reports
/// conflicting records (the one finished last is kept) and removes the lock files when no process holds any. Throws
/// ResultsError for a file that cannot be trusted.
MergeSummary merge_output(const std::string& results_path, const std::string& output_dir);

struct ShardStatus {
  int rank = 0, count = 1;
  std::size_t rows = 0;     ///< the shard's rows of the filtered manifest
  std::size_t done = 0;     ///< image and record present
  std::size_t failed = 0;   ///< not done, and failures.csv or a journal records a failure
  std::size_t pending = 0;  ///< not done and never failed
};

/// The plan of every shard of the run `options` describes (its --num_nodes, else the scheduler's environment, else
/// one shard), as `diffgentor edit` would make it: nothing is loaded and nothing is written.
std::vector<ShardStatus> shard_status(const EditOptions& options, const ModelSpec& spec, const EnvLookup& env);

}  // namespace dg
