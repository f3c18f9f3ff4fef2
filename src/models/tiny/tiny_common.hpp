#pragma once
// Shared pieces of the tiny-bundle writers: seeded parameters, JSON files, component files and the
// torchscript/manifest.json built from the contract table.
#include <ATen/core/Generator.h>
#include <torch/csrc/jit/api/module.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "diffgentor/model_registry.hpp"

namespace dg {

class TinyWriter {
 public:
  TinyWriter(std::string dir, const ModelSpec& spec, const TinyOptions& options);
  /// A parameter drawn from N(0, 1) * `scale`; the default scale is 1/sqrt(fan_in).
  void param(torch::jit::Module& m, const std::string& name, std::vector<int64_t> shape, double scale = -1);
  void ones(torch::jit::Module& m, const std::string& name, std::vector<int64_t> shape);
  /// Saves torchscript/<component>.pt and records it (signature from the contract) for the manifest.
  void save(torch::jit::Module& m, const std::string& component);
  void write_json(const std::string& relative_path, const nlohmann::json& j) const;
  /// Writes torchscript/manifest.json with the saved components and `constants`.
  void write_manifest(const nlohmann::json& constants) const;

 private:
  std::string dir_;
  const ModelSpec& spec_;
  TinyOptions options_;
  at::Generator gen_;
  nlohmann::json components_ = nlohmann::json::object();
};

/// TorchScript methods of a tiny decoder-only LM (rms, rotate_half, and a pre-norm layer with RoPE,
/// masked GQA attention with one KV head and a SwiGLU MLP): prepend to a module's forward source.
/// The module needs `heads` / `head_dim` attributes and the parameters of lm_layer_params().
extern const char* const kTinyLmMethods;
/// TorchScript methods shared by the tiny DiTs: `sinusoid(t)` (timestep embedding of t * 1000; needs a
/// `t_freq_dim` attribute and a `t1` parameter for the dtype), `rope(x, cos, sin)` on adjacent channel
/// pairs, and `linear_attention(q, k, v)` over [B, N, heads, head_dim] (cheap for ~1024² outputs).
extern const char* const kTinyDitMethods;
/// Registers layer `l`'s parameters: n, q, k, v, o, m (second norm), g, u, d.
void lm_layer_params(TinyWriter& tw, torch::jit::Module& m, int l, int64_t d, int64_t head_dim);

/// Saves `vae_encoder` ([B,3,H,W] -> [B,C,H/8,W/8], x8 space-to-depth + two convolutions) and
/// `vae_decoder` (the mirror image; `clamp` to [-1, 1] as the Qwen VAE does).
void save_tiny_vae(TinyWriter& tw, int64_t channels, bool clamp);
/// `config` (an AutoencoderKL-family vae/config.json) with sample_size 256 and four blocks: --enable_vae_tiling then
/// cuts decodes into tiles of 32 latents every 24, as the Qwen VAE does (include/diffgentor/vae_tiling.hpp), so a
/// tiny row of about 1 MP runs several tiles.
nlohmann::json with_tiny_vae_tiling(nlohmann::json config);

/// A FLUX-style tiny `transformer` whose RoPE is built in the graph from ids (text first, then image
/// tokens): `axes` channels per id column (pairs summing to head_dim/2) and `theta`. Its forward is
/// (hidden_states, encoder_hidden_states[, pooled_projections], timestep[, guidance], img_ids, txt_ids).
struct IdsDit {
  int64_t in_channels = 64;
  int64_t txt_dim = 32;
  std::vector<int64_t> axes;
  double theta = 10000.0;
  bool guidance = false;   ///< FLUX.1 / FLUX.2-dev guidance embedding
  int64_t pooled_dim = 0;  ///< FLUX.1's pooled text projection (0 = none)
};
void save_tiny_ids_dit(TinyWriter& tw, int64_t d, const IdsDit& spec);

class Tokenizer;
/// Saves the tiny Qwen2.5-VL `vision_encoder` and `text_encoder` (hidden `d`) and writes
/// text_encoder/config.json and processor/preprocessor_config.json (src/models/tiny/tiny_qwen.cpp).
void write_tiny_qwen_vl(TinyWriter& tw, int64_t d, const Tokenizer& tokenizer, const std::string& processor_folder);

/// A byte-level BPE tokenizer.json with the real Qwen2 pre-tokenizer and special tokens, a 256-byte
/// base vocabulary and a handful of merges.
nlohmann::json tiny_qwen_tokenizer();

}  // namespace dg
