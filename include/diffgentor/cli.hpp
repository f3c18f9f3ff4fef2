#pragma once
/// Command-line parsing (CLI11) and the top-level program shared by the product binary and the test
/// binaries, which differ only in the Backend they pass (see pipeline.hpp).
#include <optional>
#include <string>

#include "diffgentor/options.hpp"
#include "diffgentor/pipeline.hpp"

namespace dg {

/// Exit codes (docs/cli.md).
enum ExitCode : int {
  kExitOk = 0,
  kExitRowsFailed = 1,   ///< the batch ran, some selected rows failed (see failures.csv)
  kExitUsage = 2,        ///< bad flags; nothing was loaded
  kExitStartup = 3,      ///< unusable manifest, bundle not found, model failed to load
  kExitInterrupted = 130,
};

struct Command {
  enum Kind { None, Models, Edit } kind = None;
  EditOptions edit;
  bool verbose = false;
};

/// Parses argv. Returns an exit code when parsing already finished the program (help, version,
/// errors: printed), else nullopt with `cmd` filled.
std::optional<int> parse_command_line(int argc, char** argv, Command& cmd, const std::string& version_text);

/// The whole program: parse, validate, plan, load, run. Never throws.
int app_main(int argc, char** argv, const Backend& backend);

}  // namespace dg
