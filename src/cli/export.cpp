// `diffgentor export`: the exporter (tools/export/export_bundle, Python) run in the project's Python environment,
// so that a downloaded checkpoint becomes a bundle with one command of the product (docs/exporting.md).
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "diffgentor/cli.hpp"

namespace fs = std::filesystem;

namespace dg {

namespace {

// The first of: the environment variable, the path this build was configured with (when it exists).
std::string locate(const char* env_name, const char* configured, const char* what) {
  if (const char* v = std::getenv(env_name); v && *v) return v;
  std::error_code ec;
  if (*configured && fs::exists(configured, ec)) return configured;
  throw std::runtime_error(fmt::format(
      "diffgentor export: {} not found (this build was configured with '{}'); set {} to it, or run ./setup.sh in "
      "the source tree to make the Python environment",
      what, configured, env_name));
}

}  // namespace

int run_export(const std::vector<std::string>& args) {
  std::string python, exporter;
  try {
    python = locate("DG_PYTHON", DG_CONFIGURED_PYTHON, "the Python of the project's environment");
    exporter = locate("DG_EXPORTER", DG_CONFIGURED_SOURCE_DIR "/tools/export/export_bundle", "the exporter");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return kExitStartup;
  }
  std::vector<std::string> argv{python, exporter};
  argv.insert(argv.end(), args.begin(), args.end());
  std::fprintf(stderr, "diffgentor export: %s\n", fmt::format("{}", fmt::join(argv, " ")).c_str());
  std::fflush(stderr);
  std::vector<char*> c_argv;
  for (auto& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  // The exporter replaces this process: its exit code, output and signal handling are the command's own.
  ::execv(python.c_str(), c_argv.data());
  std::fprintf(stderr, "diffgentor export: cannot run %s: %s\n", python.c_str(), std::strerror(errno));
  return kExitStartup;
}

}  // namespace dg
