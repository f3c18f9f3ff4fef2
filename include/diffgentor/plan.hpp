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
#include "diffgentor/results.hpp"
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
  EffectiveParams params;    ///< the run's: flags over the model's defaults
  ParamOverrides overrides;  ///< the flags given (rows' parameter columns go over them)
  /// Manifest parameter columns the model type never uses (logged at start-up and in the dry run).
  std::vector<std::string> column_warnings;
  Shard shard;
  int64_t base_seed = 0;
  bool base_seed_random = false;
  std::string base_seed_source = "--seed";  ///< where the base seed came from, for the log and the dry run
  std::string torch_dtype;
  std::string loras;           ///< the --lora set as results.csv records it ("FILE:SCALE;..."), "" for none
  std::string journals_state;  ///< journals_state(results_path) when the plan read what is done
  std::string output_dir, results_path, failures_path;
  std::size_t selected = 0;                   ///< rows after --filter_rows
  std::size_t already_done = 0;               ///< rows of this shard whose image and record exist (skipped on resume)
  std::size_t unrecorded_images = 0;          ///< rows whose image exists without a record: made again
  std::vector<std::string> changed_settings;  ///< finished rows whose record differs from this run's settings
  std::vector<PlannedRow> shard_rows;         ///< this shard's rows, in manifest order
  std::vector<std::size_t> todo;              ///< positions in shard_rows still to run
};

/// Builds the plan. Throws ManifestError (unusable manifest: missing columns, duplicate indices or
/// output names), UsageError (bad shard environment) or ResultsError (a results file that cannot be trusted,
/// or finished rows made with other settings than this run's, unless --no_resume).
Plan make_plan(const EditOptions& options, const ModelSpec& spec, const EnvLookup& env);

/// results.csv's path for these options (--output_csv, else <output_dir>/results.csv).
std::string results_path_of(const EditOptions& options);

/// failures.csv beside a results file (`<stem>.failures.csv` for a results file not named results.csv).
std::string failures_path_of(const std::string& results_path);

/// The row's sampling parameters and requested size: its parameter columns over the flags over the model's defaults.
EffectiveParams row_params(const Plan& plan, const PlannedRow& row);

/// A LoRA set as results.csv's `loras` column records it: `FILE:SCALE;...`, each file's canonical path (one file
/// named two ways is one setting), "" for none.
std::string lora_set_text(const std::vector<LoraSpec>& set);

/// The LoRA set row `row` runs with, as lora_set_text writes it: its `lora` column, else the run's --lora set.
std::string row_loras(const Plan& plan, const PlannedRow& row);

/// The settings that decide a row's image, as results.csv records them (model type, dtype, LoRAs and the effective_*
/// and requested_* columns: seed, steps, guidance, true CFG, negative prompt, requested size); resume compares them
/// with a finished row's record.
Record row_settings(const Plan& plan, const PlannedRow& row);

/// The base seed an earlier run recorded for a row of this shard (positions [begin, end) of `selected`, the
/// manifest rows after --filter_rows), if any: each shard drew its own when --seed was not given.
std::optional<int64_t> recorded_base_seed(const RecordTable& done, const Manifest& manifest,
                                          const std::vector<std::size_t>& selected, std::size_t begin, std::size_t end);

/// The dry-run report. `bundle_status` says where the bundle is (or why not), `devices` the replica
/// devices. Lists problems of the rows to do, including local input files that do not exist.
std::string format_plan(const Plan& plan, const EditOptions& options, const std::string& bundle_status,
                        const std::vector<std::string>& devices, std::size_t* problem_rows);

}  // namespace dg
