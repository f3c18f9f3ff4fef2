// `diffgentor make-tiny --model_type qwen|qwen_singleimg`: a complete Qwen-Image-Edit bundle with
// seeded random weights, built from C++ (torch::jit::Module + define()). Internals are small; the
// interfaces (bundle_contract.hpp), dtypes and input sensitivity are the real ones
// (docs/bundle-format.md, "Tiny bundles"): every component reacts to every input, so wiring tests can fail.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/script.h>
#include <torch/version.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "diffgentor/bundle_contract.hpp"
#include "diffgentor/model_registry.hpp"
#include "diffgentor/tokenizer.hpp"
#include "tiny_common.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace dg {

namespace {

// Vision tower: patch embedding, 2 blocks (block 0 attends within windows, block 1 within images),
// rotary by (row, col), then 4 consecutive rows merged into one text-width token.
const char* kVision = R"JIT(
def rotate_half(self, x: Tensor) -> Tensor:
    h = x.size(-1) // 2
    return torch.cat([x.narrow(-1, h, h).neg(), x.narrow(-1, 0, h)], -1)

def attend(self, x: Tensor, cos: Tensor, sin: Tensor, seg: Tensor, wqkv: Tensor, wo: Tensor) -> Tensor:
    P = x.size(0)
    qkv = torch.linear(x, wqkv).view(P, 3, self.heads, self.head_dim)
    q = qkv.select(1, 0)
    k = qkv.select(1, 1)
    v = qkv.select(1, 2)
    q = q * cos + self.rotate_half(q) * sin
    k = k * cos + self.rotate_half(k) * sin
    s = torch.matmul(q.transpose(0, 1), k.transpose(0, 1).transpose(1, 2)) * (self.head_dim ** -0.5)
    same = seg.unsqueeze(0) == seg.unsqueeze(1)
    s = s.masked_fill(same.logical_not().unsqueeze(0), -30000.0)
    o = torch.matmul(s.softmax(-1), v.transpose(0, 1)).transpose(0, 1).reshape(P, self.heads * self.head_dim)
    return torch.linear(o, wo)

def forward(self, pixel_values: Tensor, vision_pos: Tensor, window_seg: Tensor, image_seg: Tensor) -> Tensor:
    x = torch.linear(pixel_values.to(self.patch_w.dtype), self.patch_w, self.patch_b)
    P = x.size(0)
    theta = (vision_pos.float().unsqueeze(-1) * self.inv_freq.float()).flatten(1)
    emb = torch.cat([theta, theta], -1)
    cos = emb.cos().unsqueeze(1).to(x.dtype)
    sin = emb.sin().unsqueeze(1).to(x.dtype)
    d = x.size(-1)
    x = x + self.attend(torch.layer_norm(x, [d]), cos, sin, window_seg, self.qkv0, self.o0)
    x = x + torch.linear(torch.gelu(torch.linear(torch.layer_norm(x, [d]), self.fc0a)), self.fc0b)
    x = x + self.attend(torch.layer_norm(x, [d]), cos, sin, image_seg, self.qkv1, self.o1)
    x = x + torch.linear(torch.gelu(torch.linear(torch.layer_norm(x, [d]), self.fc1a)), self.fc1b)
    merged = torch.layer_norm(x, [d]).reshape(P // 4, 4 * d)
    return torch.linear(torch.gelu(torch.linear(merged, self.merge_a)), self.merge_b)
)JIT";

// Language model: embeddings with image embeddings scattered at image_token_id, mRoPE with three
// sections, causal attention over unmasked keys with GQA (2 query heads, 1 KV head), RMSNorm.
const char* kText = R"JIT(
def forward(self, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor, image_embeds: Tensor) -> Tensor:
    e = torch.embedding(self.embed, input_ids)
    is_image = (input_ids == self.image_token_id).unsqueeze(-1).expand_as(e)
    e = e.masked_scatter(is_image, image_embeds.to(e.dtype))
    B = e.size(0)
    L = e.size(1)
    ang = position_ids.float().unsqueeze(-1) * self.inv_freq.float()
    a = torch.cat([ang.select(0, 0).narrow(-1, 0, self.s0), ang.select(0, 1).narrow(-1, self.s0, self.s1), ang.select(0, 2).narrow(-1, self.s0 + self.s1, self.s2)], -1)
    emb = torch.cat([a, a], -1)
    cos = emb.cos().unsqueeze(1).to(e.dtype)
    sin = emb.sin().unsqueeze(1).to(e.dtype)
    idx = torch.arange(L, device=e.device)
    causal = idx.unsqueeze(0) <= idx.unsqueeze(1)
    mask = causal.unsqueeze(0).unsqueeze(0) & (attention_mask > 0).unsqueeze(1).unsqueeze(1)
    x = self.layer(e, cos, sin, mask, self.n0, self.q0, self.k0, self.v0, self.o0, self.m0, self.g0, self.u0, self.d0)
    x = self.layer(x, cos, sin, mask, self.n1, self.q1, self.k1, self.v1, self.o1, self.m1, self.g1, self.u1, self.d1)
    return self.rms(x, self.norm)
)JIT";

// DiT: image and text projections, timestep embedding (sinusoidal of t * 1000) driving AdaLN
// modulation, per-token choice between the t and t = 0 modulations (zero_cond_t), joint attention
// with RoPE tables applied to adjacent channel pairs, and linear attention for the long image
// sequence (tiny internals are free; the interface is the real one).
const char* kTransformer = R"JIT(
def time_embed(self, t: Tensor) -> Tensor:
    return torch.linear(torch.silu(torch.linear(self.sinusoid(t), self.t1, self.t1b)), self.t2, self.t2b)

def masked_attention(self, q: Tensor, k: Tensor, v: Tensor, keep: Tensor) -> Tensor:
    qf = torch.elu(q.float()) + 1.0
    kf = (torch.elu(k.float()) + 1.0) * keep.unsqueeze(-1).unsqueeze(-1).float()
    kv = torch.einsum('bnhd,bnhe->bhde', [kf, v.float()])
    z = torch.einsum('bnhd,bhd->bnh', [qf, kf.sum(1)]).unsqueeze(-1)
    return (torch.einsum('bnhd,bhde->bnhe', [qf, kv]) / z).to(v.dtype)

def block(self, img: Tensor, txt: Tensor, mod_img: Tensor, mod_txt: Tensor, cos: Tensor, sin: Tensor, keep: Tensor, wqkv: Tensor, wo: Tensor, f1: Tensor, f2: Tensor) -> Tensor:
    B = img.size(0)
    S = img.size(1)
    L = txt.size(1)
    d = img.size(-1)
    shift_i, scale_i = mod_img.chunk(2, -1)
    shift_t, scale_t = mod_txt.chunk(2, -1)
    hi = torch.layer_norm(img, [d]) * (1.0 + scale_i) + shift_i
    ht = torch.layer_norm(txt, [d]) * (1.0 + scale_t.unsqueeze(1)) + shift_t.unsqueeze(1)
    h = torch.cat([ht, hi], 1)
    N = L + S
    qkv = torch.linear(h, wqkv).view(B, N, 3, self.heads, self.head_dim)
    q = self.rope(qkv.select(2, 0), cos, sin)
    k = self.rope(qkv.select(2, 1), cos, sin)
    v = qkv.select(2, 2)
    o = torch.linear(self.masked_attention(q, k, v, keep).reshape(B, N, d), wo)
    img = img + o.narrow(1, L, S)
    return img + torch.linear(torch.gelu(torch.linear(torch.layer_norm(img, [d]), f1)), f2)

def forward(self, hidden_states: Tensor, encoder_hidden_states: Tensor, timestep: Tensor, img_freqs: Tensor, txt_freqs: Tensor, modulate_index: Tensor, encoder_hidden_states_mask: Tensor) -> Tensor:
    x = torch.linear(hidden_states, self.img_in, self.img_in_b)
    e = encoder_hidden_states
    ef = e.float()
    e = (ef * torch.rsqrt(ef.pow(2).mean(-1, keepdim=True) + 1e-6)).to(e.dtype) * self.txt_norm
    c = torch.linear(e, self.txt_in, self.txt_in_b)
    t = timestep.to(x.dtype)
    temb = self.time_embed(t)
    B = x.size(0)
    S = x.size(1)
    mod_t = torch.linear(torch.silu(temb), self.mod_w, self.mod_b)
    if self.zero_cond_t:
        mod_0 = torch.linear(torch.silu(self.time_embed(t * 0.0)), self.mod_w, self.mod_b)
        pick = (modulate_index == 1).unsqueeze(-1)
        mod_img = torch.where(pick, mod_0.unsqueeze(1), mod_t.unsqueeze(1))
    else:
        mod_img = mod_t.unsqueeze(1).expand(B, S, mod_t.size(-1))
    mod_txt = torch.linear(torch.silu(temb), self.modt_w, self.modt_b)
    freqs = torch.cat([txt_freqs, img_freqs], 0)
    cos = freqs.select(-1, 0).unsqueeze(1).to(x.dtype)
    sin = freqs.select(-1, 1).unsqueeze(1).to(x.dtype)
    keep = torch.cat([encoder_hidden_states_mask, modulate_index >= 0], 1)  # image tokens: always kept
    x = self.block(x, c, mod_img, mod_txt, cos, sin, keep, self.qkv0, self.o0, self.f0a, self.f0b)
    x = self.block(x, c, mod_img, mod_txt, cos, sin, keep, self.qkv1, self.o1, self.f1a, self.f1b)
    d = x.size(-1)
    shift, scale = torch.linear(torch.silu(temb), self.out_w, self.out_b).chunk(2, -1)
    x = torch.layer_norm(x, [d]) * (1.0 + scale.unsqueeze(1)) + shift.unsqueeze(1)
    return torch.linear(x, self.proj_out, self.proj_out_b)
)JIT";

}  // namespace

// The Qwen2.5-VL vision tower and language model of a tiny bundle, with text_encoder/config.json and
// <processor_folder>/preprocessor_config.json (shared by qwen, qwen_singleimg and longcat).
void write_tiny_qwen_vl(TinyWriter& tw, int64_t d, const Tokenizer& tokenizer, const std::string& processor_folder) {
  const int64_t heads = 2, hd = d / heads;
  const int32_t image_pad = *tokenizer.token_to_id("<|image_pad|>");
  const int64_t vocab = static_cast<int64_t>(tokenizer.vocab_size());
  // Vision encoder: rotary inv_freq of 4 over (row, col) -> 16 = head_dim channels for the tiny size.
  {
    torch::jit::Module m("TinyQwenVision");
    const int64_t vd = 32, vhd = 16;
    tw.param(m, "patch_w", {vd, 1176});
    tw.param(m, "patch_b", {vd}, 0.1);
    for (int b = 0; b < 2; ++b) {
      tw.param(m, fmt::format("qkv{}", b), {3 * vd, vd});
      tw.param(m, fmt::format("o{}", b), {vd, vd});
      tw.param(m, fmt::format("fc{}a", b), {2 * vd, vd});
      tw.param(m, fmt::format("fc{}b", b), {vd, 2 * vd});
    }
    tw.param(m, "merge_a", {4 * vd, 4 * vd});
    tw.param(m, "merge_b", {d, 4 * vd});
    m.register_buffer("inv_freq", 1.0 / at::pow(10000.0, at::arange(0, vhd / 2, 2, at::kFloat) / (vhd / 2)));
    m.register_attribute("heads", c10::IntType::get(), int64_t(2));
    m.register_attribute("head_dim", c10::IntType::get(), vhd);
    m.define(kVision);
    tw.save(m, "vision_encoder");
  }
  // Text encoder: mRoPE sections [2, 3, 3] (sum = head_dim / 2 for the tiny size).
  {
    torch::jit::Module m("TinyQwenText");
    tw.param(m, "embed", {vocab, d}, 1.0);
    for (int l = 0; l < 2; ++l) lm_layer_params(tw, m, l, d, hd);
    tw.ones(m, "norm", {d});
    const int64_t pairs = hd / 2, s0 = pairs / 4, s1 = (pairs - s0) / 2, s2 = pairs - s0 - s1;
    m.register_buffer("inv_freq", 1.0 / at::pow(10000.0, at::arange(0, hd, 2, at::kFloat) / hd));
    m.register_attribute("image_token_id", c10::IntType::get(), int64_t(image_pad));
    m.register_attribute("heads", c10::IntType::get(), heads);
    m.register_attribute("head_dim", c10::IntType::get(), hd);
    m.register_attribute("s0", c10::IntType::get(), s0);
    m.register_attribute("s1", c10::IntType::get(), s1);
    m.register_attribute("s2", c10::IntType::get(), s2);
    m.define(std::string(kTinyLmMethods) + kText);
    tw.save(m, "text_encoder");
  }
  tw.write_json("text_encoder/config.json",
                {{"architectures", {"Qwen2_5_VLForConditionalGeneration"}},
                 {"hidden_size", d},
                 {"num_hidden_layers", 2},
                 {"num_attention_heads", heads},
                 {"num_key_value_heads", 1},
                 {"vocab_size", vocab},
                 {"image_token_id", image_pad},
                 {"vision_start_token_id", *tokenizer.token_to_id("<|vision_start|>")},
                 {"rope_scaling",
                  {{"type", "mrope"},
                   {"mrope_section", {hd / 8, (hd / 2 - hd / 8) / 2, hd / 2 - hd / 8 - (hd / 2 - hd / 8) / 2}}}},
                 {"vision_config",
                  {{"depth", 2},
                   {"hidden_size", 32},
                   {"patch_size", 14},
                   {"temporal_patch_size", 2},
                   {"spatial_merge_size", 2},
                   {"window_size", 112},
                   {"fullatt_block_indexes", {1}},
                   {"out_hidden_size", d}}}});
  tw.write_json(processor_folder + "/preprocessor_config.json", {{"image_processor_type", "Qwen2VLImageProcessor"},
                                                                 {"patch_size", 14},
                                                                 {"temporal_patch_size", 2},
                                                                 {"merge_size", 2},
                                                                 {"min_pixels", 3136},
                                                                 {"max_pixels", 12845056},
                                                                 {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
                                                                 {"image_std", {0.26862954, 0.26130258, 0.27577711}}});
}

void make_tiny_qwen(const ModelSpec& spec, const std::string& dir, const TinyOptions& opt) {
  const bool small = opt.size == "small";
  const int64_t d = small ? 256 : 32, heads = 2, hd = d / heads;
  const bool zero_cond_t = spec.type == "qwen";
  TinyWriter tw(dir, spec, opt);

  // Tokenizer first: its vocabulary sizes the embedding, its ids go into the configs.
  const json tok = tiny_qwen_tokenizer();
  tw.write_json("tokenizer/tokenizer.json", tok);
  tw.write_json("tokenizer/tokenizer_config.json", {{"pad_token", "<|endoftext|>"}, {"padding_side", "right"}});
  const Tokenizer tokenizer = Tokenizer::from_json(tok, "tiny tokenizer");
  const std::string system_prefix =
      "<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects, "
      "background), then explain how the user's text instruction should alter or modify the image. Generate a new "
      "image that meets the user's requirements while maintaining consistency with the original input where "
      "appropriate.<|im_end|>\n<|im_start|>user\n";
  const auto drop = static_cast<int64_t>(tokenizer.encode(system_prefix).size());

  write_tiny_qwen_vl(tw, d, tokenizer, "processor");  // QwenImageEdit(Plus)Pipeline.processor

  // Transformer: RoPE axes summing to head_dim; tables are [S, head_dim / 2, 2].
  std::vector<int64_t> axes{hd / 4, 3 * hd / 8, 3 * hd / 8};
  {
    torch::jit::Module m("TinyQwenTransformer");
    tw.param(m, "img_in", {d, 64});
    tw.param(m, "img_in_b", {d}, 0.1);
    tw.ones(m, "txt_norm", {d});
    tw.param(m, "txt_in", {d, d});
    tw.param(m, "txt_in_b", {d}, 0.1);
    tw.param(m, "t1", {d, d});
    tw.param(m, "t1b", {d}, 0.1);
    tw.param(m, "t2", {d, d});
    tw.param(m, "t2b", {d}, 0.1);
    for (const char* n : {"mod", "modt", "out"}) {
      tw.param(m, fmt::format("{}_w", n), {2 * d, d});
      tw.param(m, fmt::format("{}_b", n), {2 * d}, 0.1);
    }
    for (int l = 0; l < 2; ++l) {
      tw.param(m, fmt::format("qkv{}", l), {3 * d, d});
      tw.param(m, fmt::format("o{}", l), {d, d});
      tw.param(m, fmt::format("f{}a", l), {2 * d, d});
      tw.param(m, fmt::format("f{}b", l), {d, 2 * d});
    }
    tw.param(m, "proj_out", {64, d});
    tw.param(m, "proj_out_b", {64}, 0.1);
    m.register_attribute("zero_cond_t", c10::BoolType::get(), zero_cond_t);
    m.register_attribute("heads", c10::IntType::get(), heads);
    m.register_attribute("head_dim", c10::IntType::get(), hd);
    m.register_attribute("t_freq_dim", c10::IntType::get(), d);
    m.define(std::string(kTinyDitMethods) + kTransformer);
    tw.save(m, "transformer");
  }
  save_tiny_vae(tw, 16, true);

  // diffusers-style configs holding the constants the runtime reads.
  tw.write_json("model_index.json", {{"_class_name", spec.pipeline_class},
                                     {"_diffusers_version", "0.40.0"},
                                     {"scheduler", {"diffusers", "FlowMatchEulerDiscreteScheduler"}},
                                     {"transformer", {"diffusers", "QwenImageTransformer2DModel"}},
                                     {"vae", {"diffusers", "AutoencoderKLQwenImage"}}});
  tw.write_json("scheduler/scheduler_config.json", {{"_class_name", "FlowMatchEulerDiscreteScheduler"},
                                                    {"num_train_timesteps", 1000},
                                                    {"shift", 1.0},
                                                    {"use_dynamic_shifting", true},
                                                    {"base_shift", 0.5},
                                                    {"max_shift", 0.9},
                                                    {"base_image_seq_len", 256},
                                                    {"max_image_seq_len", 8192},
                                                    {"time_shift_type", "exponential"},
                                                    {"shift_terminal", 0.02}});
  tw.write_json("vae/config.json", {{"_class_name", "AutoencoderKLQwenImage"},
                                    {"z_dim", 16},
                                    {"latents_mean",
                                     {-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134,
                                      -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921}},
                                    {"latents_std",
                                     {2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526,
                                      2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160}}});
  tw.write_json("transformer/config.json", {{"_class_name", "QwenImageTransformer2DModel"},
                                            {"in_channels", 64},
                                            {"out_channels", 16},
                                            {"num_layers", 2},
                                            {"attention_head_dim", hd},
                                            {"num_attention_heads", heads},
                                            {"joint_attention_dim", d},
                                            {"axes_dims_rope", axes},
                                            {"zero_cond_t", zero_cond_t},
                                            {"guidance_embeds", false}});
  tw.write_manifest({{"prompt_template_encode_start_idx", drop}});
}

}  // namespace dg
