#include "e2e_util.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "diffgentor/fs.hpp"
#include "diffgentor/image_io.hpp"

namespace fs = std::filesystem;

namespace dg::test {

ProcessResult diffgentor(const std::vector<std::string>& args, TempDir& dir,
                         const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv{DG_MAIN_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  static int n = 0;
  return run_process(argv, env, dir / ("io" + std::to_string(n++)));
}

int max_pixel_diff(const Image& a, const Image& b) {
  if (a.width != b.width || a.height != b.height) return 256;
  int worst = 0;
  for (std::size_t k = 0; k < a.rgb.size(); ++k) worst = std::max(worst, std::abs(a.rgb[k] - b.rgb[k]));
  return worst;
}

Workspace::Workspace() {
  bundle = dir / "bundle";
  write_text(bundle + "/torchscript/manifest.json", "{}");
  out = dir / "out";
}

std::string Workspace::image(const std::string& name, int w, int h, int seed) {
  Image img{w, h, std::vector<uint8_t>(static_cast<std::size_t>(w) * h * 3)};
  for (std::size_t k = 0; k < img.rgb.size(); ++k) img.rgb[k] = static_cast<uint8_t>((k * 7 + seed * 31) % 251);
  const std::string path = dir / name;
  write_file_atomic(path, encode_image(img, fs::path(name).extension().string()));
  return path;
}

std::string Workspace::file(const std::string& name, const std::string& text) {
  write_text(dir / name, text);
  return dir / name;
}

std::vector<std::string> Workspace::edit_argv(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{DG_TESTPIPE_BIN, "edit", "--model_name", bundle, "--output_dir", out};
  if (std::find(args.begin(), args.end(), "--model_type") == args.end())
    argv.insert(argv.end(), {"--model_type", "qwen"});
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::string Workspace::io_dir() { return dir / ("run" + std::to_string(runs++)); }

ProcessResult Workspace::edit(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  const std::string io = io_dir();
  return run_process(edit_argv(args), env, io);
}

pid_t Workspace::spawn_edit(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  return spawn(edit_argv(args), env, io_dir());
}

Image read_image(const std::string& path) { return decode_image(read_file_bytes(path), int64_t(1) << 30); }

std::vector<int> call_log(const std::string& path) {
  std::vector<int> out;
  std::istringstream in(read_text(path));
  for (int v; in >> v;) out.push_back(v);
  return out;
}

std::set<std::string> files_below(const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); ++it)
    if (it->is_regular_file()) out.insert(fs::relative(it->path(), dir).string());
  return out;
}

}  // namespace dg::test
