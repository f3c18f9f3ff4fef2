#include "tiny_common.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/version.h>

#include <cmath>
#include <filesystem>

#include "diffgentor/bundle_contract.hpp"
#include "diffgentor/fs.hpp"
#include "diffgentor/text_regex.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace dg {

TinyWriter::TinyWriter(std::string dir, const ModelSpec& spec, const TinyOptions& options)
    : dir_(std::move(dir)), spec_(spec), options_(options), gen_(at::detail::createCPUGenerator(options.seed)) {
  fs::create_directories(fs::path(dir_) / "torchscript");
}

void TinyWriter::param(torch::jit::Module& m, const std::string& name, std::vector<int64_t> shape, double scale) {
  if (scale < 0) {
    int64_t fan_in = 1;
    for (std::size_t k = 1; k < shape.size(); ++k) fan_in *= shape[k];
    scale = 1.0 / std::sqrt(double(shape.size() > 1 ? fan_in : shape[0]));
  }
  m.register_parameter(name, at::randn(shape, gen_, at::kFloat) * scale, false);
}

void TinyWriter::ones(torch::jit::Module& m, const std::string& name, std::vector<int64_t> shape) {
  m.register_parameter(name, at::ones(shape, at::kFloat) + at::randn(shape, gen_, at::kFloat) * 0.1, false);
}

void TinyWriter::save(torch::jit::Module& m, const std::string& component) {
  auto tensors = [](const std::vector<TensorSpec>& list) {
    json out = json::array();
    for (const auto& t : list)
      out.push_back({{"name", t.name}, {"dtype", t.dtype == "W" ? "float32" : t.dtype}, {"shape", t.shape}});
    return out;
  };
  json entry = {{"file", component + ".pt"}, {"methods", json::object()}};
  for (const auto& c : bundle_components(spec_.type)) {
    if (c.name != component || !c.optional.empty()) continue;  // make-tiny writes no optional group
    entry["subfolder"] = c.subfolder;
    entry["methods"][c.method] = {{"inputs", tensors(c.inputs)}, {"outputs", tensors(c.outputs)}};
  }
  if (entry["methods"].empty()) throw std::logic_error("no contract for component " + component);
  m.save((fs::path(dir_) / "torchscript" / (component + ".pt")).string());
  components_[component] = entry;
}

void TinyWriter::write_json(const std::string& rel, const json& j) const {
  write_file_atomic((fs::path(dir_) / rel).string(), j.dump(2) + "\n");
}

void TinyWriter::write_manifest(const json& constants) const {
  write_json("torchscript/manifest.json",
             {{"format_version", kBundleFormatVersion},
              {"model_type", spec_.type},
              {"source", {{"model_id", nullptr}, {"revision", nullptr}}},
              {"producer",
               {{"name", "diffgentor make-tiny"},
                {"version", DG_VERSION},
                {"torch", fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH)}}},
              {"tiny", true},
              {"size", options_.size},
              {"seed", options_.seed},
              {"dtype", "float32"},
              {"dtype_convertible", true},
              {"trace_device", "cpu"},
              {"attention", "math"},
              {"components", components_},
              {"constants", constants}});
}

const char* const kTinyLmMethods = R"JIT(
def rms(self, x: Tensor, w: Tensor) -> Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * w

def rotate_half(self, x: Tensor) -> Tensor:
    h = x.size(-1) // 2
    return torch.cat([x.narrow(-1, h, h).neg(), x.narrow(-1, 0, h)], -1)

def layer(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor, n: Tensor, wq: Tensor, wk: Tensor, wv: Tensor, wo: Tensor, n2: Tensor, g: Tensor, u: Tensor, dn: Tensor) -> Tensor:
    B = x.size(0)
    L = x.size(1)
    h = self.rms(x, n)
    q = torch.linear(h, wq).view(B, L, self.heads, self.head_dim).transpose(1, 2)
    k = torch.linear(h, wk).view(B, L, 1, self.head_dim).transpose(1, 2)
    v = torch.linear(h, wv).view(B, L, 1, self.head_dim).transpose(1, 2)
    q = q * cos + self.rotate_half(q) * sin
    k = k * cos + self.rotate_half(k) * sin
    k = k.expand(B, self.heads, L, self.head_dim)
    v = v.expand(B, self.heads, L, self.head_dim)
    s = torch.matmul(q, k.transpose(2, 3)) * (self.head_dim ** -0.5)
    s = s.masked_fill(mask.logical_not(), -30000.0)
    o = torch.matmul(s.softmax(-1), v).transpose(1, 2).reshape(B, L, self.heads * self.head_dim)
    x = x + torch.linear(o, wo)
    h = self.rms(x, n2)
    return x + torch.linear(torch.silu(torch.linear(h, g)) * torch.linear(h, u), dn)
)JIT";

const char* const kTinyDitMethods = R"JIT(
def sinusoid(self, t: Tensor) -> Tensor:
    half = self.t_freq_dim // 2
    freqs = torch.exp(torch.arange(half, device=t.device).float() * (-9.210340371976184 / half))
    args = t.float().unsqueeze(-1) * 1000.0 * freqs.unsqueeze(0)
    return torch.cat([args.cos(), args.sin()], -1).to(self.t1.dtype)

def rope(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    xe = x[..., 0::2]
    xo = x[..., 1::2]
    return torch.stack([xe * cos - xo * sin, xe * sin + xo * cos], -1).flatten(-2)

def linear_attention(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    qf = torch.elu(q.float()) + 1.0
    kf = torch.elu(k.float()) + 1.0
    kv = torch.einsum('bnhd,bnhe->bhde', [kf, v.float()])
    z = torch.einsum('bnhd,bhd->bnh', [qf, kf.sum(1)]).unsqueeze(-1)
    return (torch.einsum('bnhd,bhde->bnhe', [qf, kv]) / z).to(v.dtype)
)JIT";

void lm_layer_params(TinyWriter& tw, torch::jit::Module& m, int l, int64_t d, int64_t hd) {
  tw.ones(m, fmt::format("n{}", l), {d});
  tw.ones(m, fmt::format("m{}", l), {d});
  tw.param(m, fmt::format("q{}", l), {d, d});
  tw.param(m, fmt::format("k{}", l), {hd, d});
  tw.param(m, fmt::format("v{}", l), {hd, d});
  tw.param(m, fmt::format("o{}", l), {d, d});
  tw.param(m, fmt::format("g{}", l), {2 * d, d});
  tw.param(m, fmt::format("u{}", l), {2 * d, d});
  tw.param(m, fmt::format("d{}", l), {d, 2 * d});
}

namespace {

const char* kVaeEncoder = R"JIT(
def forward(self, image: Tensor) -> Tensor:
    B = image.size(0)
    height = image.size(2)
    width = image.size(3)
    x = image.to(self.c1.dtype).reshape(B, 3, height // 8, 8, width // 8, 8).permute(0, 1, 3, 5, 2, 4)
    x = x.reshape(B, 192, height // 8, width // 8)
    x = torch.silu(torch.conv2d(x, self.c1, self.c1b))
    return torch.conv2d(x, self.c2, self.c2b, [1, 1], [1, 1])
)JIT";

const char* kVaeDecoder = R"JIT(
def forward(self, latents: Tensor) -> Tensor:
    B = latents.size(0)
    h = latents.size(2)
    w = latents.size(3)
    x = torch.silu(torch.conv2d(latents.to(self.c1.dtype), self.c1, self.c1b, [1, 1], [1, 1]))
    x = torch.conv2d(x, self.c2, self.c2b)
    x = x.reshape(B, 3, 8, 8, h, w).permute(0, 1, 4, 2, 5, 3).reshape(B, 3, h * 8, w * 8)
    return {RESULT}
)JIT";

}  // namespace

// 8x8 pixel blocks <-> latent pixels: a 1x1 conv on the 192 block values and a 3x3 conv on the latent grid.
// Kept narrow (32 hidden channels, ~0.35 GFLOP per 1024² image and direction): on CPUs without native bf16
// kernels the pip libtorch runs bfloat16 convolutions on its reference GEMM (about 1 GFLOP/s here).
void save_tiny_vae(TinyWriter& tw, int64_t channels, bool clamp) {
  {
    torch::jit::Module m("TinyVaeEncoder");
    tw.param(m, "c1", {32, 192, 1, 1});
    tw.param(m, "c1b", {32}, 0.1);
    tw.param(m, "c2", {channels, 32, 3, 3});
    tw.param(m, "c2b", {channels}, 0.1);
    m.define(kVaeEncoder);
    tw.save(m, "vae_encoder");
  }
  torch::jit::Module m("TinyVaeDecoder");
  tw.param(m, "c1", {32, channels, 3, 3});
  tw.param(m, "c1b", {32}, 0.1);
  tw.param(m, "c2", {192, 32, 1, 1});
  tw.param(m, "c2b", {192}, 0.1);
  std::string src = kVaeDecoder;
  src.replace(src.find("{RESULT}"), 8, clamp ? "x.clamp(-1.0, 1.0)" : "x");
  m.define(src);
  tw.save(m, "vae_decoder");
}

json with_tiny_vae_tiling(json config) {
  config["sample_size"] = 256;
  config["block_out_channels"] = {32, 32, 32, 32};
  return config;
}

json tiny_qwen_tokenizer() {
  json vocab = json::object();
  int id = 0;
  for (int pass = 0; pass < 2; ++pass)  // bytes_to_unicode order: printable bytes, then the remapped ones
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      if (printable == (pass == 0)) vocab[byte_to_unicode(static_cast<unsigned char>(b))] = id++;
    }
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"\u0120", "t"}, {"h", "e"},      {"\u0120t", "he"}, {"i", "n"},      {"e", "r"}, {"\u0120", "a"}, {"o", "n"},
      {"a", "t"},      {"\u0120", "s"}, {"r", "e"},        {"\u0120", "c"}, {"e", "d"}, {"\u0120", "i"}, {"i", "c"}};
  json merge_list = json::array();
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = id++;
    merge_list.push_back(a + " " + b);
  }
  json added = json::array();
  for (const char* special : {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                              "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"})
    added.push_back({{"id", id++},
                     {"content", special},
                     {"special", true},
                     {"normalized", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"single_word", false}});
  return {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern",
            {{"Regex",
              R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}}},
      {"post_processor", {{"type", "ByteLevel"}, {"trim_offsets", false}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", merge_list},
        {"unk_token", nullptr},
        {"byte_fallback", false},
        {"ignore_merges", false}}}};
}

}  // namespace dg
