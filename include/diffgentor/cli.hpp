#pragma once
/// Command-line parsing (CLI11) and the top-level program shared by the product binary and the test
/// binaries, which differ only in the Backend they pass (see backend.hpp).
#include <optional>
#include <string>
#include <vector>

#include "diffgentor/backend.hpp"
#include "diffgentor/options.hpp"
#include "diffgentor/report.hpp"

namespace dg {

/// Exit codes (README.md, "Usage").
enum ExitCode : int {
  kExitOk = 0,
  kExitRowsFailed = 1,  ///< the batch ran, some selected rows failed (see failures.csv)
  kExitUsage = 2,       ///< bad flags; nothing was loaded
  kExitStartup = 3,     ///< unusable manifest, bundle not found, model failed to load
  kExitInterrupted = 130,
};

/// `diffgentor make-tiny`: write a tiny bundle with seeded random weights.
struct MakeTinyOptions {
  std::string model_type;
  std::string out;
  std::string size = "tiny";  ///< tiny | small
  int64_t seed = 0;
};

/// `diffgentor tokenize`: print token ids as a JSON list.
struct TokenizeOptions {
  std::optional<std::string> model_name;  ///< a bundle (its tokenizer/tokenizer.json)
  std::optional<std::string> tokenizer;   ///< a tokenizer.json file
  bool add_special_tokens = false;
  bool decode = false;  ///< the input is a JSON list of ids; prints the text as a JSON string
  bool skip_special_tokens = false, clean_up_tokenization_spaces = false;  ///< decode settings
  std::optional<std::string> text;                                         ///< else standard input
};

struct MergeOptions {
  std::string output_dir;                 ///< the run's --output_dir
  std::optional<std::string> output_csv;  ///< the run's --output_csv, if it had one
};

struct Command {
  enum Kind { None, Models, Edit, MakeTiny, Tokenize, Merge, Status, Export, Report } kind = None;
  ReportOptions report;
  std::vector<std::string> export_args;  ///< `export`: everything after it, handed to the exporter
  EditOptions edit;                      ///< edit's options; `status` takes the same ones
  MergeOptions merge;
  MakeTinyOptions tiny;
  TokenizeOptions tokenize;
  bool models_markdown = false;  ///< `models --markdown`: the table of docs/models/README.md
  bool verbose = false;
};

/// Parses argv. Returns an exit code when parsing already finished the program (help, version,
/// errors: printed), else nullopt with `cmd` filled.
std::optional<int> parse_command_line(int argc, char** argv, Command& cmd, const std::string& version_text);

/// `diffgentor export ARGS...`: runs tools/export/export_bundle ARGS... with the project's Python ($DG_PYTHON, else
/// the environment this build was configured with); the exporter replaces the process. Returns only on failure.
int run_export(const std::vector<std::string>& args);

/// The whole program: parse, validate, plan, load, run. Never throws.
int app_main(int argc, char** argv, const Backend& backend);

}  // namespace dg
