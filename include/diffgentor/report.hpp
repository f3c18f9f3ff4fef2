#pragma once
/// `diffgentor report` (docs/report.md): one offline HTML page of a run's output folder: a header with the run
/// (model, counts, wall time, rows/s, the effective defaults, enhancer fallbacks), one card per row (input and
/// output thumbnails, the instruction, seed, size, model time; a failed row's stage and reason in place of the
/// output), client-side search and filtering with pagination, and a chart of the model time per row as inline SVG.
/// Torch-free. The page model is separate from the rendering so that tests can check counts, order and escaping.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "diffgentor/manifest.hpp"
#include "diffgentor/results.hpp"

namespace dg {

struct ReportOptions {
  std::string output_dir;
  std::optional<std::string> output_csv;  ///< the run's --output_csv, if it had one
  std::optional<std::string> input;       ///< the manifest: pending rows, and failed rows' inputs and instructions
  std::string instruction_key = "instruction";
  std::optional<std::string> out;  ///< default <output_dir>/report.html
  std::optional<int> limit;        ///< at most this many cards (the first by index)
  bool failed_only = false;
  int thumb_size = 256;  ///< longest side of a thumbnail, pixels
};

struct ReportRow {
  int64_t index = 0;
  bool failed = false;
  std::vector<std::string> inputs;  ///< as the manifest gives them (resolved against its folder when known)
  std::string output;               ///< output_image, relative to the output folder
  std::string instruction, enhanced;
  std::string seed, size;  ///< "" when unknown (a failed row)
  double model_s = 0;
  std::string stage, reason;  ///< a failed row's
};

struct ReportModel {
  std::string model_name, model_type;  ///< the most frequent in results.csv ("" when it has no rows)
  std::size_t done = 0, failed = 0;
  std::optional<std::size_t> pending;     ///< with the manifest: its rows neither done nor failed
  double wall_s = 0;                      ///< first row started .. last row finished (over every recorded run)
  double rows_per_s = 0;                  ///< done / wall_s
  std::string steps, guidance, true_cfg;  ///< the most frequent effective values ("" when none)
  std::size_t enhance_fallbacks = 0;
  std::vector<ReportRow> rows;  ///< sorted by index; --failed_only and --limit applied
};

/// The page model from the output folder's records (results.csv and shard journals, failures.csv) and, when given,
/// the manifest. Throws ResultsError for a results file that cannot be trusted, ManifestError for the manifest.
ReportModel make_report_model(const ReportOptions& options);

/// The same from records already read (what the tests use); `manifest` may be null.
ReportModel make_report_model(const RecordTable& results, const RecordTable& failures, const Manifest* manifest,
                              const ReportOptions& options);

/// Where a card's images are, relative to the page ("" for a thumbnail that could not be made).
struct CardFiles {
  std::string output_thumb, output_link;
  std::vector<std::string> input_thumbs, input_links;  ///< aligned with ReportRow::inputs
};

/// The HTML page: self-contained (inline CSS, JS and SVG; no network), images referenced by `files[k]` for card k.
/// The rows travel as JSON inside the page and are rendered page by page by its script.
std::string render_report_html(const ReportModel& model, const std::vector<CardFiles>& files);

/// Writes the page and its thumbnails (<page stem>_files/, made with the project's Pillow-exact resize, kept when
/// newer than their source); returns the page's path. Images that cannot be read get no thumbnail, only their path.
std::string write_report(const ReportOptions& options, const ReportModel& model);

}  // namespace dg
