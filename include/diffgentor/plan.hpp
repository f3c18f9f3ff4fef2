#pragma once
/// The run plan: the manifest read and validated, then filter, shard and resume applied, in that
/// order, with every row's output name and seed fixed up front. `--dry_run` prints it; the runner
/// executes its `todo` list.
#include <cstdint>
#include <string>
#include <vector>

#include "diffgentor/manifest.hpp"
#include "diffgentor/naming.hpp"
#include "diffgentor/options.hpp"
#include "diffgentor/selection.hpp"

namespace dg {

struct PlannedRow {
  const ManifestRow* row = nullptr;
  RowInput input;
  OutputName output;
  uint64_t seed = 0;
  std::string output_path;            ///< output_dir / output.name
  std::vector<std::string> problems;  ///< input.problems + naming and seed problems
};

struct Plan {
  Manifest manifest;
  const ModelSpec* spec = nullptr;
  EffectiveParams params;
  Shard shard;
  int64_t base_seed = 0;
  bool base_seed_random = false;
  std::string output_dir, results_path, failures_path;
  std::size_t selected = 0;            ///< rows after --filter_rows
  std::size_t already_done = 0;        ///< rows of this shard whose output exists (skipped on resume)
  std::vector<PlannedRow> shard_rows;  ///< this shard's rows, in manifest order
  std::vector<std::size_t> todo;       ///< positions in shard_rows still to run
};

/// Builds the plan. Throws ManifestError (unusable manifest: missing columns, duplicate indices or
/// output names) or UsageError (bad shard environment).
Plan make_plan(const EditOptions& options, const ModelSpec& spec, const EnvLookup& env);

/// The dry-run report. `bundle_status` says where the bundle is (or why not), `devices` the replica
/// devices. Lists problems of the rows to do, including local input files that do not exist.
std::string format_plan(const Plan& plan, const EditOptions& options, const std::string& bundle_status,
                        const std::vector<std::string>& devices, std::size_t* problem_rows);

}  // namespace dg
