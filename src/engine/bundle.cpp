#include "diffgentor/bundle.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/jit/runtime/operator.h>
#include <torch/script.h>
#include <torch/version.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "diffgentor/bundle_contract.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace dg {

at::ScalarType dtype_from_name(const std::string& name) {
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float16") return at::kHalf;
  if (name == "float32") return at::kFloat;
  throw BundleError(fmt::format("unknown dtype '{}' (expected bfloat16, float16 or float32)", name));
}

namespace {

json read_json(const fs::path& path, const std::string& bundle) {
  std::ifstream in(path);
  if (!in) throw BundleError(fmt::format("bundle {}: missing file {}", bundle, path.string()));
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) throw BundleError(fmt::format("bundle {}: {} is not valid JSON", bundle, path.string()));
  return j;
}

}  // namespace

Bundle Bundle::open(const std::string& dir, const ModelSpec& spec, const std::string& dtype,
                    const std::string& device) {
  Bundle b;
  b.dir_ = dir;
  b.model_type_ = spec.type;
  b.manifest_ = read_json(fs::path(dir) / "torchscript" / "manifest.json", dir);
  const json& m = b.manifest_;
  auto fail = [&](const std::string& what) -> BundleError {
    return BundleError(fmt::format("bundle {}: torchscript/manifest.json: {}", dir, what));
  };
  if (!m.contains("format_version") || !m["format_version"].is_number_integer())
    throw fail("no integer format_version");
  const int version = m["format_version"].get<int>();
  const int oldest = min_bundle_format_version(spec.type);
  if (version < oldest || version > kBundleFormatVersion)
    throw fail(
        fmt::format("format_version {} is not supported (this build reads {} for {}); re-export the bundle", version,
                    oldest == kBundleFormatVersion ? fmt::format("version {}", oldest)
                                                   : fmt::format("versions {} to {}", oldest, kBundleFormatVersion),
                    spec.type));
  const std::string type = m.value("model_type", "");
  if (type != spec.type) throw fail(fmt::format("model_type is '{}' but the run asks for '{}'", type, spec.type));
  // A bundle loads only in a libtorch at least as new as the one that wrote it (docs/bundle-format.md, "Versions").
  const std::string producer = m.value("producer", json::object()).value("torch", "");
  int pmaj = 0, pmin = 0;
  if (std::sscanf(producer.c_str(), "%d.%d", &pmaj, &pmin) == 2 &&
      std::make_pair(pmaj, pmin) > std::make_pair(TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR))
    throw fail(
        fmt::format("written by torch {}, newer than this runtime's libtorch {}.{}; run with a newer libtorch "
                    "or re-export with an older torch",
                    producer, TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR));
  const std::string bundle_dtype = m.value("dtype", "");
  dtype_from_name(bundle_dtype);
  b.convertible_ = m.value("dtype_convertible", false);
  if (!b.convertible_ && bundle_dtype != dtype)
    throw fail(fmt::format("the bundle was exported in {}, but the run dtype is {}; run in {} or re-export in {}",
                           bundle_dtype, dtype, bundle_dtype, dtype));
  b.dtype_ = dtype_from_name(b.convertible_ ? dtype : bundle_dtype);
  if (b.dtype_ == at::kHalf && device == "cpu")
    throw BundleError("dtype float16 does not run on the CPU (no half-precision matmul); use bfloat16 or float32");

  const auto& contract = bundle_components(spec.type);
  for (const auto& g : m.value("optional", json::array())) {
    const std::string group = g.is_string() ? g.get<std::string>() : "";
    if (std::none_of(contract.begin(), contract.end(), [&](const ComponentSpec& c) { return c.optional == group; }))
      throw fail(fmt::format("optional lists '{}', which model type {} has no components for", g.dump(), spec.type));
    b.optional_.push_back(group);
  }
  const json components = m.value("components", json::object());
  std::vector<std::string> files{"model_index.json", "scheduler/scheduler_config.json"};
  for (const auto& c : contract) {
    if (!b.holds(c)) continue;
    if (!components.contains(c.name)) throw fail(fmt::format("component '{}' is missing", c.name));
    const std::string file = components[c.name].value("file", "");
    if (file.empty() || !fs::is_regular_file(fs::path(dir) / "torchscript" / file))
      throw fail(fmt::format("component '{}': file torchscript/{} does not exist", c.name, file));
    files.push_back(c.subfolder + "/config.json");
  }
  for (const auto& f : files)
    if (!b.configs_.count(f)) b.configs_[f] = read_json(fs::path(dir) / f, dir);
  return b;
}

bool Bundle::has_optional(const std::string& group) const {
  return std::find(optional_.begin(), optional_.end(), group) != optional_.end();
}

const json& Bundle::config(const std::string& rel) const {
  auto it = configs_.find(rel);
  if (it != configs_.end()) return it->second;
  auto& self = const_cast<Bundle&>(*this);
  return self.configs_[rel] = read_json(fs::path(dir_) / rel, dir_);
}

const json& Bundle::constant(const std::string& key) const {
  if (!manifest_.contains("constants") || !manifest_["constants"].contains(key))
    throw BundleError(fmt::format("bundle {}: torchscript/manifest.json has no constants.{}", dir_, key));
  return manifest_["constants"][key];
}

torch::jit::Module Bundle::load(const std::string& component, const std::string& device) const {
  std::vector<const ComponentSpec*> methods;
  for (const auto& c : bundle_components(model_type_))
    if (c.name == component && holds(c)) methods.push_back(&c);
  if (methods.empty())
    throw BundleError(
        fmt::format("bundle {}: model type {} has no component '{}' in this bundle", dir_, model_type_, component));
  const json& entry = manifest_["components"][component];
  const fs::path file = fs::path(dir_) / "torchscript" / entry.value("file", "");
  // The exporter lists the graph's operators (bundle contract §3.1); name the ones this libtorch lacks
  // instead of failing inside torch::jit::load with a schema error.
  std::vector<std::string> missing_ops;
  for (const auto& op : entry.value("required_ops", json::array()))
    if (op.is_string() && op.get<std::string>().rfind("aten::", 0) == 0 &&
        torch::jit::getAllOperatorsFor(c10::Symbol::fromQualString(op.get<std::string>())).empty())
      missing_ops.push_back(op.get<std::string>());
  if (!missing_ops.empty())
    throw BundleError(
        fmt::format("bundle {}: component {} needs operators this libtorch {}.{} lacks: {}; link a libtorch "
                    "at least as new as the exporter's, or export with --attention math",
                    dir_, component, TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, fmt::join(missing_ops, ", ")));
  torch::jit::Module mod;
  try {
    mod = torch::jit::load(file.string(), torch::Device(device));
  } catch (const c10::Error& e) {
    throw BundleError(fmt::format("bundle {}: cannot load {}: {}", dir_, file.string(), e.what_without_backtrace()));
  }
  for (const ComponentSpec* spec : methods) {
    const auto method = mod.find_method(spec->method);
    if (!method) throw BundleError(fmt::format("bundle {}: {} has no method {}()", dir_, file.string(), spec->method));
    const auto& args = method->function().getSchema().arguments();
    std::vector<std::string> got, want;
    for (std::size_t k = 1; k < args.size(); ++k) got.push_back(args[k].name());
    for (const auto& in : spec->inputs) want.push_back(in.name);
    if (got != want)
      throw BundleError(fmt::format(
          "bundle {}: component {} ({}) has the wrong signature: {}({}) but the contract "
          "wants {}({})",
          dir_, component, file.string(), spec->method, fmt::join(got, ", "), spec->method, fmt::join(want, ", ")));
  }
  if (convertible_) mod.to(dtype_);
  mod.eval();
  return mod;
}

namespace {

at::Tensor float_tensor(const SafeTensor& t, const std::string& path, const std::string& target) {
  const std::map<std::string, at::ScalarType> types = {
      {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"F64", at::kDouble}};
  const auto it = types.find(t.dtype);
  if (it == types.end() || t.shape.size() != 2)
    throw BundleError(
        fmt::format("LoRA {}: layer {} is a {}-D {} tensor, not a 2-D float matrix (only Linear layers "
                    "are merged)",
                    path, target, t.shape.size(), t.dtype));
  return at::from_blob(const_cast<char*>(t.bytes.data()), t.shape, at::TensorOptions().dtype(it->second))
      .to(at::kFloat);
}

}  // namespace

std::string merge_lora(torch::jit::Module& module, const std::vector<LoraLayer>& layers, double scale,
                       const std::string& path, std::map<std::string, at::Tensor>* originals) {
  // Every dotted suffix of each 2-D weight's module path (and its kohya spelling) -> the parameter. Where several
  // weights end in the same suffix the shortest name wins, i.e. the layer at that path right under the wrapper
  // (a LoRA's top-level "proj_out" is "t.proj_out", not "t.single_transformer_blocks.0.proj_out", as PEFT maps it);
  // two of the same length are ambiguous ("").
  struct Match {
    std::string name;  ///< the parameter; "" when two of the shortest length match
    std::size_t length = 0;
  };
  std::map<std::string, Match> dotted, kohya;
  std::map<std::string, at::Tensor> weights;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) {
    if (p.value.dim() != 2 || p.name.size() < 7 || p.name.compare(p.name.size() - 7, 7, ".weight") != 0) continue;
    weights.emplace(p.name, p.value);
    const std::string base = p.name.substr(0, p.name.size() - 7);
    std::vector<std::size_t> starts{0};
    for (std::size_t i = 0; i < base.size(); ++i)
      if (base[i] == '.') starts.push_back(i + 1);
    for (const std::size_t pos : starts) {
      const std::string suffix = base.substr(pos);
      std::string k = suffix;
      std::replace(k.begin(), k.end(), '.', '_');
      for (auto* index : {&dotted, &kohya}) {
        const std::string& key = index == &dotted ? suffix : k;
        auto [it, fresh] = index->emplace(key, Match{p.name, p.name.size()});
        if (fresh || it->second.name == p.name) continue;
        if (p.name.size() < it->second.length)
          it->second = Match{p.name, p.name.size()};
        else if (p.name.size() == it->second.length)
          it->second.name.clear();
      }
    }
  }
  std::vector<std::string> unmatched;
  std::map<int64_t, int> ranks;
  torch::NoGradGuard no_grad;
  for (const LoraLayer& layer : layers) {
    const auto& index = layer.kohya ? kohya : dotted;
    const auto it = index.find(layer.target);
    if (it == index.end() || it->second.name.empty()) {
      unmatched.push_back(layer.target + (it == index.end() ? "" : " (ambiguous)"));
      continue;
    }
    const std::string& param = it->second.name;
    at::Tensor w = weights.at(param);
    const at::Tensor down = float_tensor(*layer.down, path, layer.target),
                     up = float_tensor(*layer.up, path, layer.target);
    const int64_t rank = down.size(0);
    if (up.size(1) != rank || up.size(0) != w.size(0) || down.size(1) != w.size(1))
      throw BundleError(fmt::format("LoRA {}: layer {}: up [{}, {}] x down [{}, {}] does not fit {} [{}, {}]", path,
                                    layer.target, up.size(0), up.size(1), down.size(0), down.size(1), param, w.size(0),
                                    w.size(1)));
    const double factor = scale * layer.alpha.value_or(static_cast<double>(rank)) / static_cast<double>(rank);
    const at::Tensor delta = at::mm(up, down).mul_(factor);
    if (originals && !originals->count(param)) originals->emplace(param, w.to(at::kCPU, false, /*copy=*/true));
    w.copy_(w.to(at::kFloat).add_(delta.to(w.device())).to(w.scalar_type()));
    ++ranks[rank];
  }
  if (!unmatched.empty()) {
    const std::size_t show = std::min<std::size_t>(unmatched.size(), 5);
    throw BundleError(fmt::format(
        "LoRA {}: {} of {} layers match no weight of the transformer ({}{}): a LoRA for another model, or in a naming "
        "this runtime does not map (docs/lora.md)",
        path, unmatched.size(), layers.size(), fmt::join(unmatched.begin(), unmatched.begin() + show, ", "),
        unmatched.size() > show ? ", ..." : ""));
  }
  std::vector<std::string> r;
  for (const auto& [rank, n] : ranks) r.push_back(fmt::format("{} at rank {}", n, rank));
  return fmt::format("LoRA {}: {} layers merged into the transformer at scale {} ({})", path, layers.size(), scale,
                     fmt::join(r, ", "));
}

}  // namespace dg
