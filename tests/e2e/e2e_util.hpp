#pragma once
// Helpers for end-to-end tests: a workspace with real image files, a bundle directory, manifests,
// and the diffgentor binaries run as child processes.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "diffgentor/image.hpp"
#include "diffgentor/results.hpp"
#include "process.hpp"

namespace dg::test {

struct Workspace {
  TempDir dir;
  std::string bundle;  ///< a directory with torchscript/manifest.json (the test pipeline reads nothing)
  std::string out;     ///< output directory
  int runs = 0;

  Workspace();
  /// Writes a w x h PNG whose pixels depend on `seed`; returns its path.
  std::string image(const std::string& name, int w, int h, int seed = 0);
  std::string file(const std::string& name, const std::string& text);
  /// Runs diffgentor_testpipe `edit --model_name <bundle> --output_dir <out> --model_type qwen` + args (the
  /// type only when args do not name one).
  ProcessResult edit(const std::vector<std::string>& args, const std::map<std::string, std::string>& env = {});
  pid_t spawn_edit(const std::vector<std::string>& args, const std::map<std::string, std::string>& env);
  std::vector<std::string> edit_argv(const std::vector<std::string>& args) const;
  RecordTable results() const { return RecordTable::load(out + "/results.csv"); }
  RecordTable failures() const { return RecordTable::load(out + "/failures.csv"); }
  std::string io_dir();
};

/// Runs the product binary (`diffgentor` + args) with its output under `dir`.
ProcessResult diffgentor(const std::vector<std::string>& args, TempDir& dir,
                         const std::map<std::string, std::string>& env = {});
Image read_image(const std::string& path);
/// The largest difference of one channel of one pixel; 256 when the sizes differ.
int max_pixel_diff(const Image& a, const Image& b);
/// Lines of a call log as integers, in order.
std::vector<int> call_log(const std::string& path);
/// Every regular file below `dir`, relative to it.
std::set<std::string> files_below(const std::string& dir);

}  // namespace dg::test
