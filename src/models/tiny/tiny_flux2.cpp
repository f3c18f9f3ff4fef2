// `diffgentor make-tiny --model_type flux2|flux2_klein`: FLUX.2 bundles with seeded random weights
// (docs/bundle-format.md, "Tiny bundles"): a 3-layer LM whose three layer outputs are stacked per token, a DiT whose
// RoPE is built from the 4-D ids in the graph (theta 2000, interleaved pairs), a 32-channel VAE, random
// batch-norm statistics in the manifest, and a tokenizer of the real kind (Qwen3 for klein, a
// Tekken-style BPE with a special-token block for dev).
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/script.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "diffgentor/model_registry.hpp"
#include "diffgentor/text_regex.hpp"
#include "diffgentor/tokenizer.hpp"
#include "tiny_common.hpp"

using nlohmann::json;

namespace dg {

namespace {

const char* kText = R"JIT(
def forward(self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor) -> Tensor:
    x = torch.embedding(self.embed, input_ids)
    L = x.size(1)
    ang = position_ids.float().unsqueeze(-1) * self.inv_freq.float()
    emb = torch.cat([ang, ang], -1)
    cos = emb.cos().unsqueeze(1).to(x.dtype)
    sin = emb.sin().unsqueeze(1).to(x.dtype)
    idx = torch.arange(L, device=x.device)
    mask = (idx.unsqueeze(0) <= idx.unsqueeze(1)).unsqueeze(0).unsqueeze(0) & (attention_mask > 0).unsqueeze(1).unsqueeze(1)
    h1 = self.layer(x, cos, sin, mask, self.n0, self.q0, self.k0, self.v0, self.o0, self.m0, self.g0, self.u0, self.d0)
    h2 = self.layer(h1, cos, sin, mask, self.n1, self.q1, self.k1, self.v1, self.o1, self.m1, self.g1, self.u1, self.d1)
    h3 = self.layer(h2, cos, sin, mask, self.n2, self.q2, self.k2, self.v2, self.o2, self.m2, self.g2, self.u2, self.d2)
    return torch.cat([h1, h2, h3], -1)
)JIT";

// {GUIDANCE_ARG} and {GUIDANCE_EMB} are filled for FLUX.2-dev (guidance embedding) and left empty for klein.
const char* kTransformer = R"JIT(
def block(self, img: Tensor, txt: Tensor, mod: Tensor, cos: Tensor, sin: Tensor, wqkv: Tensor, wo: Tensor, f1: Tensor, f2: Tensor) -> Tensor:
    B = img.size(0)
    S = img.size(1)
    L = txt.size(1)
    d = img.size(-1)
    shift, scale = mod.chunk(2, -1)
    h = torch.cat([torch.layer_norm(txt, [d]), torch.layer_norm(img, [d])], 1) * (1.0 + scale.unsqueeze(1)) + shift.unsqueeze(1)
    qkv = torch.linear(h, wqkv).view(B, L + S, 3, self.heads, self.head_dim)
    q = self.rope(qkv.select(2, 0), cos, sin)
    k = self.rope(qkv.select(2, 1), cos, sin)
    v = qkv.select(2, 2)
    o = torch.linear(self.linear_attention(q, k, v).reshape(B, L + S, d), wo)
    img = img + o.narrow(1, L, S)
    return img + torch.linear(torch.gelu(torch.linear(torch.layer_norm(img, [d]), f1)), f2)

def forward(self, hidden_states: Tensor, encoder_hidden_states: Tensor{POOLED_ARG}, timestep: Tensor{GUIDANCE_ARG}, img_ids: Tensor, txt_ids: Tensor) -> Tensor:
    x = torch.linear(hidden_states, self.img_in)
    c = torch.linear(encoder_hidden_states, self.txt_in)
    temb = torch.linear(torch.silu(torch.linear(self.sinusoid(timestep.to(x.dtype)), self.t1, self.t1b)), self.t2, self.t2b)
{GUIDANCE_EMB}
{POOLED_EMB}
    mod = torch.linear(torch.silu(temb), self.mod_w, self.mod_b)
    ids = torch.cat([txt_ids, img_ids], 0).float()
    ang = ids.index_select(1, self.axis_of_pair.long()) * self.inv_freq.float()
    cos = ang.cos().unsqueeze(1).to(x.dtype)
    sin = ang.sin().unsqueeze(1).to(x.dtype)
    x = self.block(x, c, mod, cos, sin, self.qkv0, self.o0, self.f0a, self.f0b)
    x = self.block(x, c, mod, cos, sin, self.qkv1, self.o1, self.f1a, self.f1b)
    d = x.size(-1)
    shift, scale = torch.linear(torch.silu(temb), self.out_w, self.out_b).chunk(2, -1)
    x = torch.layer_norm(x, [d]) * (1.0 + scale.unsqueeze(1)) + shift.unsqueeze(1)
    return torch.linear(x, self.proj_out.weight)
)JIT";

const char* kPooledEmb =
    R"JIT(    temb = temb + torch.linear(pooled_projections.to(x.dtype), self.pool_w, self.pool_b))JIT";

const char* kGuidanceEmb =
    R"JIT(    temb = temb + torch.linear(torch.silu(torch.linear(self.sinusoid(guidance.to(x.dtype)), self.g1, self.g1b)), self.g2, self.g2b))JIT";

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (auto p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

// A Tekken-style tokenizer.json as transformers' Mistral converter writes it: a block of special tokens
// first (ids 0..19 here; 0..999 in the real one), regular tokens at rank + 20, ignore_merges, the
// Tekken split regex, no normalizer, no post-processor.
json tiny_tekken_tokenizer() {
  const std::vector<std::pair<int, const char*>> named = {{0, "<unk>"},
                                                          {1, "<s>"},
                                                          {2, "</s>"},
                                                          {3, "[INST]"},
                                                          {4, "[/INST]"},
                                                          {10, "[IMG]"},
                                                          {11, "<pad>"},
                                                          {12, "[IMG_BREAK]"},
                                                          {13, "[IMG_END]"},
                                                          {17, "[SYSTEM_PROMPT]"},
                                                          {18, "[/SYSTEM_PROMPT]"}};
  json added = json::array();
  for (int id = 0; id < 20; ++id) {
    std::string content = fmt::format("<SPECIAL_{}>", id);
    for (const auto& [k, v] : named)
      if (k == id) content = v;
    added.push_back({{"id", id},
                     {"content", content},
                     {"special", true},
                     {"normalized", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"single_word", false}});
  }
  json vocab = json::object();
  int id = 20;
  for (int b = 0; b < 256; ++b) vocab[byte_to_unicode(static_cast<unsigned char>(b))] = id++;
  json merges = json::array();
  for (const auto& [a, b] :
       std::vector<std::pair<std::string, std::string>>{{"\u0120", "a"}, {"i", "n"}, {"t", "h"}, {"e", "r"}}) {
    vocab[a + b] = id++;
    merges.push_back(a + " " + b);
  }
  return {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern",
            {{"Regex",
              R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", merges},
        {"ignore_merges", true},
        {"unk_token", "<unk>"},
        {"byte_fallback", false}}}};
}

}  // namespace

void save_tiny_ids_dit(TinyWriter& tw, int64_t d, const IdsDit& spec) {
  const int64_t heads = 2, hd = d / heads, in_channels = spec.in_channels, txt_dim = spec.txt_dim;
  const auto& axes = spec.axes;
  const double theta = spec.theta;
  const bool guidance = spec.guidance;
  torch::jit::Module m("TinyIdsTransformer");
  tw.param(m, "img_in", {d, in_channels});
  tw.param(m, "txt_in", {d, txt_dim});
  tw.param(m, "t1", {d, d});
  tw.param(m, "t1b", {d}, 0.1);
  tw.param(m, "t2", {d, d});
  tw.param(m, "t2b", {d}, 0.1);
  if (guidance) {
    tw.param(m, "g1", {d, d});
    tw.param(m, "g1b", {d}, 0.1);
    tw.param(m, "g2", {d, d});
    tw.param(m, "g2b", {d}, 0.1);
  }
  if (spec.pooled_dim > 0) {
    tw.param(m, "pool_w", {d, spec.pooled_dim});
    tw.param(m, "pool_b", {d}, 0.1);
  }
  for (const char* n : {"mod", "out"}) {
    tw.param(m, fmt::format("{}_w", n), {2 * d, d});
    tw.param(m, fmt::format("{}_b", n), {2 * d}, 0.1);
  }
  for (int l = 0; l < 2; ++l) {
    tw.param(m, fmt::format("qkv{}", l), {3 * d, d});
    tw.param(m, fmt::format("o{}", l), {d, d});
    tw.param(m, fmt::format("f{}a", l), {2 * d, d});
    tw.param(m, fmt::format("f{}b", l), {d, 2 * d});
  }
  {  // a submodule, so that its weight is "proj_out.weight" as diffusers' Linear names it: a LoRA can adapt it
    torch::jit::Module proj("TinyProjOut");
    tw.param(proj, "weight", {in_channels, d});
    m.register_module("proj_out", proj);
  }
  // Per channel pair: which id column it rotates by, and its frequency 1 / theta^(2j / axis_dim).
  std::vector<int64_t> axis_of_pair;
  std::vector<float> inv;
  for (std::size_t a = 0; a < axes.size(); ++a)
    for (int64_t j = 0; j < axes[a]; j += 2) {
      axis_of_pair.push_back(static_cast<int64_t>(a));
      inv.push_back(static_cast<float>(1.0 / std::pow(theta, double(j) / double(axes[a]))));
    }
  if (static_cast<int64_t>(inv.size()) * 2 != hd) throw std::logic_error("RoPE axes must cover the head dimension");
  m.register_buffer("inv_freq", at::tensor(inv));
  m.register_buffer("axis_of_pair", at::tensor(axis_of_pair));
  m.register_attribute("heads", c10::IntType::get(), heads);
  m.register_attribute("head_dim", c10::IntType::get(), hd);
  m.register_attribute("t_freq_dim", c10::IntType::get(), d);
  std::string src = replace_all(kTransformer, "{GUIDANCE_ARG}", guidance ? ", guidance: Tensor" : "");
  src = replace_all(src, "{GUIDANCE_EMB}", guidance ? kGuidanceEmb : "");
  src = replace_all(src, "{POOLED_ARG}", spec.pooled_dim > 0 ? ", pooled_projections: Tensor" : "");
  src = replace_all(src, "{POOLED_EMB}", spec.pooled_dim > 0 ? kPooledEmb : "");
  m.define(std::string(kTinyDitMethods) + src);
  tw.save(m, "transformer");
}

void make_tiny_flux2(const ModelSpec& spec, const std::string& dir, const TinyOptions& opt) {
  const bool klein = spec.type == "flux2_klein", small = opt.size == "small";
  const int64_t d = small ? 256 : 32, heads = 2, hd = d / heads, J = 3 * d;
  TinyWriter tw(dir, spec, opt);

  json tok;
  std::string pad;
  if (klein) {  // Qwen3: the Qwen2 layout plus <think> / </think> as added (non-special) tokens
    tok = tiny_qwen_tokenizer();
    int next = 0;
    for (const auto& a : tok["added_tokens"]) next = std::max(next, a["id"].get<int>() + 1);
    for (const char* t : {"<think>", "</think>"})
      tok["added_tokens"].push_back({{"id", next++},
                                     {"content", t},
                                     {"special", false},
                                     {"normalized", false},
                                     {"lstrip", false},
                                     {"rstrip", false},
                                     {"single_word", false}});
    pad = "<|endoftext|>";
  } else {
    tok = tiny_tekken_tokenizer();
    pad = "<pad>";
  }
  tw.write_json("tokenizer/tokenizer.json", tok);
  tw.write_json("tokenizer/tokenizer_config.json",
                {{"pad_token", pad}, {"padding_side", "right"}, {"model_max_length", 512}});
  const int64_t vocab = static_cast<int64_t>(Tokenizer::from_json(tok, "tiny").vocab_size());

  {
    torch::jit::Module m("TinyFlux2TextEncoder");
    tw.param(m, "embed", {vocab, d}, 1.0);
    for (int l = 0; l < 3; ++l) lm_layer_params(tw, m, l, d, hd);
    m.register_buffer("inv_freq", 1.0 / at::pow(10000.0, at::arange(0, hd, 2, at::kFloat) / hd));
    m.register_attribute("heads", c10::IntType::get(), heads);
    m.register_attribute("head_dim", c10::IntType::get(), hd);
    m.define(std::string(kTinyLmMethods) + kText);
    tw.save(m, "text_encoder");
  }
  // Four RoPE axes of hd/4 channels each, theta 2000 (Flux2Transformer2DModel).
  save_tiny_ids_dit(tw, d, IdsDit{128, J, {hd / 4, hd / 4, hd / 4, hd / 4}, 2000.0, !klein, 0});
  save_tiny_vae(tw, 32, false);

  json model_index = {{"_class_name", spec.pipeline_class}, {"_diffusers_version", "0.40.0"}};
  if (klein) model_index["is_distilled"] = true;
  tw.write_json("model_index.json", model_index);
  tw.write_json("scheduler/scheduler_config.json", {{"_class_name", "FlowMatchEulerDiscreteScheduler"},
                                                    {"num_train_timesteps", 1000},
                                                    {"shift", 3.0},
                                                    {"use_dynamic_shifting", true},
                                                    {"base_shift", 0.5},
                                                    {"max_shift", 1.15},
                                                    {"base_image_seq_len", 256},
                                                    {"max_image_seq_len", 4096},
                                                    {"time_shift_type", "exponential"}});
  tw.write_json("vae/config.json", with_tiny_vae_tiling({{"_class_name", "AutoencoderKLFlux2"},
                                                         {"latent_channels", 32},
                                                         {"batch_norm_eps", 1e-4},
                                                         {"patch_size", {2, 2}}}));
  tw.write_json("transformer/config.json", {{"_class_name", "Flux2Transformer2DModel"},
                                            {"in_channels", 128},
                                            {"joint_attention_dim", J},
                                            {"num_attention_heads", heads},
                                            {"attention_head_dim", hd},
                                            {"axes_dims_rope", {hd / 4, hd / 4, hd / 4, hd / 4}},
                                            {"rope_theta", 2000},
                                            {"guidance_embeds", !klein}});
  tw.write_json("text_encoder/config.json", {{"hidden_size", d},
                                             {"num_hidden_layers", 3},
                                             {"vocab_size", vocab},
                                             {"num_attention_heads", heads},
                                             {"num_key_value_heads", 1}});
  std::vector<float> mean(128), var(128);
  const at::Tensor rm = at::randn({128}) * 0.5, rv = at::rand({128}) + 0.5;
  for (int k = 0; k < 128; ++k) mean[k] = rm[k].item<float>(), var[k] = rv[k].item<float>();
  tw.write_manifest(
      {{"vae_bn_running_mean", mean}, {"vae_bn_running_var", var}, {"text_encoder_out_layers", {1, 2, 3}}});
}

}  // namespace dg
