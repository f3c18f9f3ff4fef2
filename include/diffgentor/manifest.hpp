#pragma once
/// The input manifest (docs/batch-runner.md, "Manifest"): CSV (RFC 4180) or JSONL rows naming input image(s) and an
/// instruction. Loading checks what makes the whole manifest unusable (unreadable file, missing
/// columns, duplicate or non-integer indices) and throws ManifestError; everything that concerns one
/// row only is reported per row by interpret_row(), so one bad row never stops the batch.
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "diffgentor/lora.hpp"
#include "diffgentor/model_table.hpp"

namespace dg {

struct ManifestError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ManifestRow {
  int64_t index = 0;                ///< the `index` column, else the 0-based record number
  int line = 0;                     ///< 1-based line in the file where the record starts
  std::vector<std::string> values;  ///< aligned with Manifest::columns ("" where absent)
  std::string error;                ///< non-empty for a malformed record (reported, then failed)
};

/// A record whose identity cannot be read (malformed, and its index field unreadable).
struct OrphanRecord {
  int line = 0;
  std::string reason;
};

struct Manifest {
  std::string path;
  std::string format;  ///< "csv" or "jsonl"
  std::vector<std::string> columns;
  std::vector<ManifestRow> rows;
  std::vector<OrphanRecord> orphans;
  std::string image_column;  ///< input_images, image_url or image (first present, in that order)
  std::string instruction_column;

  /// Column position or -1.
  int column(const std::string& name) const;
  /// The row's value in a column, or nullopt when the manifest has no such column.
  std::optional<std::string> value(const ManifestRow& row, const std::string& name) const;
};

struct ManifestOptions {
  std::string instruction_key = "instruction";
  std::optional<std::string> output_name_column;
};

/// Loads a .csv/.tsv-free CSV or a .jsonl/.ndjson manifest (chosen by extension; .json lines too).
Manifest load_manifest(const std::string& path, const ManifestOptions& options);

/// What one row asks for, after interpreting its fields.
struct RowInput {
  std::string image_column;         ///< the column the images came from
  std::vector<std::string> images;  ///< local paths (resolved against the manifest's folder) or URLs
  std::string instruction;
  std::optional<int64_t> seed;  ///< the row's `seed` column
  /// The row's parameter columns that are non-empty (docs/batch-runner.md, "Per-row parameters"):
  /// num_inference_steps, guidance_scale, true_cfg_scale, negative_prompt, width, height. They win over the flags.
  ParamOverrides params;
  /// The row's `lora` column (docs/lora.md, "Per-row LoRAs"): unset when empty (the run's --lora set), empty for
  /// `none`, else its `FILE[:SCALE]` entries (`;`-separated, relative files resolved against the manifest's folder).
  std::optional<std::vector<LoraSpec>> loras;
  std::vector<std::string> problems;  ///< "field: reason" for each problem found
};

/// The manifest columns that override a run's parameters for their row, in the order results.csv lists them.
const std::vector<std::string>& param_columns();

/// Interprets one row. `input_images` holds a JSON list or a single path/URL (no comma splitting:
/// paths and URLs may contain commas). Relative paths resolve against the manifest's folder.
RowInput interpret_row(const Manifest& manifest, const ManifestRow& row);

}  // namespace dg
