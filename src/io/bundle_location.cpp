#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "diffgentor/bundle_location.hpp"
#include "diffgentor/fs.hpp"

namespace fs = std::filesystem;

namespace dg {

namespace {

bool is_bundle(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "torchscript" / "manifest.json", ec);
}

// A diffusers snapshot without torchscript/: what was found and the command that makes a bundle of it.
std::string export_hint(const fs::path& snapshot, const std::string& model, const std::string& out) {
  std::string cls = "?";
  try {
    const auto index = nlohmann::json::parse(read_file_bytes((snapshot / "model_index.json").string()));
    cls = index.value("_class_name", cls);
  } catch (const std::exception&) {  // an unreadable model_index.json: the hint stands without the class
  }
  return fmt::format(
      "found a diffusers snapshot at {} (model_index.json: {}) but no torchscript/ folder: diffgentor runs exported "
      "bundles. Make one with\n  diffgentor export --model {} --out {}\n(docs/exporting.md), then pass "
      "--model_name {}",
      snapshot.string(), cls, model, out, out);
}

bool is_snapshot(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "model_index.json", ec);
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string resolve_bundle(const std::string& name, const EnvLookup& env) {
  std::vector<std::string> looked;
  std::error_code ec;
  const std::string how = "A bundle is a diffusers snapshot plus a torchscript/ folder (docs/bundle-format.md).";
  if (fs::is_directory(name, ec)) {
    if (is_bundle(name)) return fs::path(name).lexically_normal().string();
    if (is_snapshot(name)) {
      const std::string dir = fs::path(name).lexically_normal().string();
      throw BundleNotFound(
          export_hint(dir, dir, (dir.back() == '/' ? dir.substr(0, dir.size() - 1) : dir) + "-diffgentor"));
    }
    throw BundleNotFound(
        fmt::format("--model_name {} is a directory but holds no torchscript/manifest.json, so it "
                    "is not a diffgentor bundle. {}",
                    name, how));
  }
  looked.push_back(fmt::format("{} (not a directory)", name));

  if (const char* root = env("DG_MODEL_ROOT"); root && *root) {
    const fs::path p = fs::path(root) / name;
    if (is_bundle(p)) return p.string();
    looked.push_back(fmt::format("{} ($DG_MODEL_ROOT/<name>)", p.string()));
  } else {
    looked.push_back("$DG_MODEL_ROOT/<name> ($DG_MODEL_ROOT is not set)");
  }

  fs::path hub, found_snapshot;  // found_snapshot: a cached diffusers snapshot without torchscript/
  if (const char* c = env("HF_HUB_CACHE"); c && *c)
    hub = c;
  else if (const char* h = env("HF_HOME"); h && *h)
    hub = fs::path(h) / "hub";
  else if (const char* home = env("HOME"); home && *home)
    hub = fs::path(home) / ".cache" / "huggingface" / "hub";
  if (!hub.empty() && name.find('/') != std::string::npos && name.front() != '/' && name.front() != '.') {
    const fs::path model_dir = hub / fmt::format("models--{}", [&] {
                                 std::string r;
                                 for (char c : name) r += c == '/' ? std::string("--") : std::string(1, c);
                                 return r;
                               }());
    const fs::path snapshots = model_dir / "snapshots";
    try {
      const std::string ref = trim(read_file_bytes((model_dir / "refs" / "main").string()));
      if (!ref.empty() && is_bundle(snapshots / ref)) return (snapshots / ref).string();
    } catch (const std::exception&) {
    }
    fs::path newest;
    fs::file_time_type newest_time{};
    if (fs::is_directory(snapshots, ec)) {
      for (const auto& e : fs::directory_iterator(snapshots, ec)) {
        if (is_snapshot(e.path()) && !is_bundle(e.path())) found_snapshot = e.path();
        if (!is_bundle(e.path())) continue;
        const auto t = fs::last_write_time(e.path(), ec);
        if (newest.empty() || t > newest_time) newest = e.path(), newest_time = t;
      }
    }
    if (!newest.empty()) return newest.string();
    looked.push_back(fmt::format("{}/<ref> (Hugging Face cache)", snapshots.string()));
  } else {
    looked.push_back("the Hugging Face cache (needs an <org>/<name> model name)");
  }
  if (!found_snapshot.empty()) {
    const char* root = env("DG_MODEL_ROOT");
    throw BundleNotFound(export_hint(
        found_snapshot, name,
        (root && *root ? fs::path(root) / name : fs::path("bundles") / fs::path(name).filename()).string()));
  }
  std::string where;
  for (const auto& l : looked) where += "\n  - " + l;
  throw BundleNotFound(fmt::format("no model bundle found for --model_name {}; looked in:{}\n{}", name, where, how));
}

}  // namespace dg
