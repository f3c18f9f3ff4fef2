// `diffgentor make-tiny --model_type glm_image`: a GLM-Image bundle with seeded random weights and the real
// interfaces and id layout (docs/bundle-format.md, "Tiny bundles"; docs/models/glm_image.md): vision ids first
// (K codebook codes, image start K, image end K + 1, spares up to K + 16), the text vocabulary after them with
// <sop>, <eop> and <|image|> as added tokens; an LM whose head covers the K + 16 vision ids, with all three
// mRoPE axes in use and prefill/decode methods; a DiT with reference K/V (forward and write_kv); a 16-channel
// VAE with per-channel latents_mean/std.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/script.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "diffgentor/model_registry.hpp"
#include "diffgentor/tokenizer.hpp"
#include "tiny_common.hpp"

using nlohmann::json;

namespace dg {

namespace {

// ByT5-like glyph encoder: byte embeddings, one attention layer with clamped relative-position buckets and a key
// mask, a GELU MLP, RMS norms.
const char* kGlyph = R"JIT(
def rms(self, x: Tensor, w: Tensor) -> Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * w

def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    x = torch.embedding(self.embed, input_ids)
    G = x.size(0)
    L = x.size(1)
    h = self.rms(x, self.n0)
    q = torch.linear(h, self.wq).view(G, L, 2, self.head_dim).transpose(1, 2)
    k = torch.linear(h, self.wk).view(G, L, 2, self.head_dim).transpose(1, 2)
    v = torch.linear(h, self.wv).view(G, L, 2, self.head_dim).transpose(1, 2)
    idx = torch.arange(L, device=x.device)
    rel = (idx.unsqueeze(0) - idx.unsqueeze(1)).clamp(-4, 4) + 4
    bias = torch.embedding(self.rel_bias, rel).permute(2, 0, 1).unsqueeze(0)
    s = torch.matmul(q, k.transpose(2, 3)) + bias
    s = s.masked_fill((attention_mask == 0).unsqueeze(1).unsqueeze(1), -30000.0)
    o = torch.matmul(s.softmax(-1), v).transpose(1, 2).reshape(G, L, x.size(2))
    x = x + torch.linear(o, self.wo)
    x = x + torch.linear(torch.gelu(torch.linear(self.rms(x, self.n1), self.f1)), self.f2)
    return self.rms(x, self.nf)
)JIT";

// Vision tower + VQ: patch linear, a learned 8x8 position table sampled at each patch's place in its grid, one
// pre-LN attention block over the image, a projection, L2-normalised nearest codebook entry.
const char* kImageTokenizer = R"JIT(
def forward(self, pixel_values: Tensor, patch_pos: Tensor, patch_grid: Tensor) -> Tensor:
    x = torch.linear(pixel_values.to(self.patch_w.dtype), self.patch_w, self.patch_b)
    P = x.size(0)
    d = x.size(1)
    cell = torch.div(patch_pos * 8, patch_grid, rounding_mode='floor')
    x = x + torch.embedding(self.pos_table, cell.select(1, 0) * 8 + cell.select(1, 1))
    h = torch.layer_norm(x, [d])
    q = torch.linear(h, self.wq).view(P, 2, d // 2).transpose(0, 1)
    k = torch.linear(h, self.wk).view(P, 2, d // 2).transpose(0, 1)
    v = torch.linear(h, self.wv).view(P, 2, d // 2).transpose(0, 1)
    s = torch.matmul(q, k.transpose(1, 2)) * ((d // 2) ** -0.5)
    x = x + torch.linear(torch.matmul(s.softmax(-1), v).transpose(0, 1).reshape(P, d), self.wo)
    x = x + torch.linear(torch.gelu(torch.linear(torch.layer_norm(x, [d]), self.f1)), self.f2)
    z = torch.linear(x, self.quant).float()
    z = z / (z * z).sum(-1, keepdim=True).sqrt()
    e = self.codebook.float()
    e = e / (e * e).sum(-1, keepdim=True).sqrt()
    dist = (z * z).sum(-1, keepdim=True) + (e * e).sum(-1).unsqueeze(0) - 2.0 * torch.matmul(z, e.t())
    return dist.argmin(-1)
)JIT";

// The AR LM: embeddings, NL pre-norm layers with GQA (2 query heads, 1 KV head, head dim 16), partial mRoPE
// (8 of 16 dims; frequencies 0-1 on the t axis, 2 on h, 3 on w), a SwiGLU MLP; the head covers the vision ids.
// prefill is causal over its n tokens; decode attends the whole cache plus itself.
const char* kArLm = R"JIT(
def rms(self, x: Tensor, w: Tensor) -> Tensor:
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * w

def rotate(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    r = x.narrow(-1, 0, 8)
    c = cos.unsqueeze(1).to(x.dtype)
    s = sin.unsqueeze(1).to(x.dtype)
    rh = torch.cat([r.narrow(-1, 4, 4).neg(), r.narrow(-1, 0, 4)], -1)
    return torch.cat([r * c + rh * s, x.narrow(-1, 8, x.size(-1) - 8)], -1)

def run(self, input_ids: Tensor, position_ids: Tensor, past_k: Tensor, past_v: Tensor, causal: bool) -> Tuple[Tensor, Tensor, Tensor]:
    x = torch.embedding(self.embed, input_ids)
    n = x.size(1)
    d = x.size(2)
    inv = 1.0 / torch.pow(10000.0, torch.arange(0, 8, 2, device=x.device).float() / 8.0)
    axis = torch.tensor([0, 0, 1, 2], device=x.device)
    ang = position_ids.float().index_select(0, axis).permute(1, 2, 0) * inv
    emb = torch.cat([ang, ang], -1)
    cos = emb.cos()
    sin = emb.sin()
    ks: List[Tensor] = []
    vs: List[Tensor] = []
    for l in range(self.layers):
        h = self.rms(x, self.n1[l])
        q = self.rotate(torch.linear(h, self.wq[l]).view(1, n, 2, 16).transpose(1, 2), cos, sin)
        k = self.rotate(torch.linear(h, self.wk[l]).view(1, n, 1, 16).transpose(1, 2), cos, sin)
        v = torch.linear(h, self.wv[l]).view(1, n, 1, 16).transpose(1, 2)
        k = torch.cat([past_k[l], k], 2)
        v = torch.cat([past_v[l], v], 2)
        T = k.size(2)
        s = torch.matmul(q, k.expand(1, 2, T, 16).transpose(2, 3)) * 0.25
        if causal:
            qi = torch.arange(n, device=x.device).unsqueeze(1) + (T - n)
            ki = torch.arange(T, device=x.device).unsqueeze(0)
            s = s.masked_fill(ki > qi, -30000.0)
        o = torch.matmul(s.softmax(-1), v.expand(1, 2, T, 16)).transpose(1, 2).reshape(1, n, d)
        x = x + torch.linear(o, self.wo[l])
        h = self.rms(x, self.n2[l])
        x = x + torch.linear(torch.silu(torch.linear(h, self.wg[l])) * torch.linear(h, self.wu[l]), self.wd[l])
        ks.append(k)
        vs.append(v)
    last = self.rms(x, self.nf).select(1, n - 1)
    logits = torch.linear(last, self.head, self.head_b).float()
    return logits, torch.stack(ks, 0), torch.stack(vs, 0)

def prefill(self, input_ids: Tensor, position_ids: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    empty = self.embed.new_zeros([self.layers, 1, 1, 0, 16])
    return self.run(input_ids, position_ids, empty, empty, True)

def decode(self, input_ids: Tensor, position_ids: Tensor, past_k: Tensor, past_v: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    return self.run(input_ids, position_ids, past_k, past_v, False)
)JIT";

// The DiT: 2x2 patches plus the projected prior embedding (dropped rows zeroed before the projector, so its bias
// still counts), glyph tokens before image tokens, AdaLN modulation per stream from the timestep and size
// condition, LayerNorm QK-norm, rotate-half RoPE on image queries/keys, reference K/V prepended to the keys.
const char* kDit = R"JIT(
def sincos(self, x: Tensor, dim: int) -> Tensor:
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=x.device).float() * (-9.210340371976184 / half))
    args = x.float().unsqueeze(-1) * freqs
    return torch.cat([args.cos(), args.sin()], -1)

def rope(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    h = x.size(-1) // 2
    xr = torch.cat([x.narrow(-1, h, h).neg(), x.narrow(-1, 0, h)], -1)
    c = cos.unsqueeze(1)
    s = sin.unsqueeze(1)
    return (x.float() * c + xr.float() * s).to(x.dtype)

def condition(self, timestep: Tensor, target_size: Tensor, crop_coords: Tensor) -> Tensor:
    te = self.sincos(timestep, 32)
    se = torch.cat([self.sincos(crop_coords.select(1, 0), 8), self.sincos(crop_coords.select(1, 1), 8),
                    self.sincos(target_size.select(1, 0), 8), self.sincos(target_size.select(1, 1), 8)], -1)
    c = torch.linear(te.to(self.t1.dtype), self.t1) + torch.linear(se.to(self.t1.dtype), self.s1)
    return torch.silu(c)

def patchify(self, x: Tensor) -> Tensor:
    B = x.size(0)
    C = x.size(1)
    h = x.size(2) // 2
    w = x.size(3) // 2
    return x.view(B, C, h, 2, w, 2).permute(0, 2, 4, 1, 3, 5).reshape(B, h * w, C * 4)

def layers(self, img: Tensor, txt: Tensor, cond: Tensor, cos: Tensor, sin: Tensor, kv_k: Tensor, kv_v: Tensor) -> Tuple[Tensor, List[Tensor], List[Tensor]]:
    B = img.size(0)
    S = img.size(1)
    L = txt.size(1)
    d = img.size(2)
    ks: List[Tensor] = []
    vs: List[Tensor] = []
    for l in range(self.depth):
        m = torch.linear(cond, self.mod_w[l], self.mod_b[l]).unsqueeze(1).chunk(6, -1)
        hi = torch.layer_norm(img, [d]) * (1.0 + m[1]) + m[0]
        ht = torch.layer_norm(txt, [d]) * (1.0 + m[4]) + m[3]
        qi, ki, vi = torch.linear(hi, self.qkv[l]).view(B, S, 3, self.heads, self.head_dim).unbind(2)
        qt, kt, vt = torch.linear(ht, self.qkv[l]).view(B, L, 3, self.heads, self.head_dim).unbind(2)
        qi = self.rope(torch.layer_norm(qi, [self.head_dim]), cos, sin)
        ki = self.rope(torch.layer_norm(ki, [self.head_dim]), cos, sin)
        qt = torch.layer_norm(qt, [self.head_dim])
        kt = torch.layer_norm(kt, [self.head_dim])
        ks.append(ki)
        vs.append(vi)
        R = kv_k.size(2)
        k = torch.cat([kv_k[l].expand(B, R, self.heads, self.head_dim), kt, ki], 1).transpose(1, 2)
        v = torch.cat([kv_v[l].expand(B, R, self.heads, self.head_dim), vt, vi], 1).transpose(1, 2)
        q = torch.cat([qt, qi], 1).transpose(1, 2)
        s = torch.matmul(q, k.transpose(2, 3)) * (self.head_dim ** -0.5)
        o = torch.matmul(s.softmax(-1), v).transpose(1, 2).reshape(B, L + S, d)
        o = torch.linear(o, self.wo[l])
        txt = txt + m[5] * o.narrow(1, 0, L)
        img = img + m[2] * o.narrow(1, L, S)
        img = img + torch.linear(torch.gelu(torch.linear(torch.layer_norm(img, [d]), self.f1[l]), approximate='tanh'), self.f2[l])
        txt = txt + torch.linear(torch.gelu(torch.linear(torch.layer_norm(txt, [d]), self.f1[l]), approximate='tanh'), self.f2[l])
    return img, ks, vs

def embed_image(self, hidden_states: Tensor, prior_token_id: Tensor, keep: Tensor) -> Tensor:
    x = torch.linear(self.patchify(hidden_states), self.img_in, self.img_in_b)
    p = torch.embedding(self.prior_table, prior_token_id) * keep.unsqueeze(-1).to(x.dtype)
    p = torch.linear(torch.silu(torch.linear(p, self.p1, self.p1b)), self.p2, self.p2b)
    return x + p

def forward(self, hidden_states: Tensor, encoder_hidden_states: Tensor, prior_token_id: Tensor, prior_token_drop: Tensor, timestep: Tensor, target_size: Tensor, crop_coords: Tensor, rope_cos: Tensor, rope_sin: Tensor, kv_k: Tensor, kv_v: Tensor) -> Tensor:
    B = hidden_states.size(0)
    C = hidden_states.size(1)
    h = hidden_states.size(2) // 2
    w = hidden_states.size(3) // 2
    img = self.embed_image(hidden_states, prior_token_id, prior_token_drop.logical_not())
    txt = torch.linear(encoder_hidden_states, self.g1, self.g1b)
    cond = self.condition(timestep, target_size, crop_coords)
    img, ks, vs = self.layers(img, txt, cond, rope_cos, rope_sin, kv_k, kv_v)
    d = img.size(2)
    shift, scale = torch.linear(cond, self.out_w, self.out_b).unsqueeze(1).chunk(2, -1)
    img = torch.layer_norm(img, [d]) * (1.0 + scale) + shift
    out = torch.linear(img, self.proj_out, self.proj_out_b)
    return out.view(B, h, w, C, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(B, C, h * 2, w * 2)

def write_kv(self, hidden_states: Tensor, prior_token_id: Tensor, target_size: Tensor, rope_cos: Tensor, rope_sin: Tensor) -> Tuple[Tensor, Tensor]:
    keep = prior_token_id >= 0
    img = self.embed_image(hidden_states, prior_token_id, keep)
    txt = img.narrow(1, 0, 0)
    zero = target_size.new_zeros([1])
    cond = self.condition(zero, target_size, torch.zeros_like(target_size))
    none = img.new_zeros([self.depth, 1, 0, self.heads, self.head_dim])
    img, ks, vs = self.layers(img, txt, cond, rope_cos, rope_sin, none, none)
    return torch.stack(ks, 0), torch.stack(vs, 0)
)JIT";

// The GLM vocabulary layout: <|dit_token_i|> for every vision id, then a byte-level BPE (ids shifted past them),
// then the grid and image tokens.
json tiny_glm_tokenizer(int64_t vision_ids) {
  json tok = tiny_qwen_tokenizer();
  json shifted = json::object();
  for (const auto& [piece, id] : tok["model"]["vocab"].items()) shifted[piece] = id.get<int64_t>() + vision_ids;
  tok["model"]["vocab"] = shifted;
  const auto added_token = [](int64_t id, const std::string& content) {
    return json{{"id", id},        {"content", content}, {"special", true},     {"normalized", false},
                {"lstrip", false}, {"rstrip", false},    {"single_word", false}};
  };
  json added = json::array();
  for (int64_t i = 0; i < vision_ids; ++i) added.push_back(added_token(i, fmt::format("<|dit_token_{}|>", i)));
  int64_t next = vision_ids + static_cast<int64_t>(shifted.size());
  for (auto a : tok["added_tokens"]) {
    a["id"] = next++;
    added.push_back(a);
  }
  for (const char* t : {"<sop>", "<eop>", "<|image|>"}) added.push_back(added_token(next++, t));
  tok["added_tokens"] = added;
  return tok;
}

}  // namespace

void make_tiny_glm_image(const ModelSpec& spec, const std::string& dir, const TinyOptions& opt) {
  const int64_t d = opt.size == "small" ? 256 : 32;
  const int64_t codes = 64, vision = codes + 16, nl = 2, dit_heads = 2, dit_head_dim = d / 2;
  TinyWriter tw(dir, spec, opt);
  const double s = 1.0 / std::sqrt(double(d));

  const json tok = tiny_glm_tokenizer(vision);
  tw.write_json("processor/tokenizer.json", tok);
  tw.write_json("processor/tokenizer_config.json", {{"bos_token", fmt::format("<|dit_token_{}|>", codes)},
                                                    {"eos_token", fmt::format("<|dit_token_{}|>", codes + 1)},
                                                    {"pad_token", "<|endoftext|>"},
                                                    {"grid_bos_token", "<sop>"},
                                                    {"grid_eos_token", "<eop>"},
                                                    {"image_token", "<|image|>"}});
  const Tokenizer tokenizer = Tokenizer::from_json(tok, "tiny glm tokenizer");
  const auto vocab = static_cast<int64_t>(tokenizer.vocab_size());
  // Small pixel limits keep CPU tests fast: references snap to sides in [64, 256].
  tw.write_json("processor/preprocessor_config.json", {{"image_processor_type", "GlmImageImageProcessor"},
                                                       {"patch_size", 16},
                                                       {"temporal_patch_size", 1},
                                                       {"merge_size", 1},
                                                       {"min_pixels", 64 * 64},
                                                       {"max_pixels", 256 * 256},
                                                       {"image_mean", {0.5, 0.5, 0.5}},
                                                       {"image_std", {0.5, 0.5, 0.5}}});
  {
    torch::jit::Module m("TinyGlyphEncoder");
    tw.param(m, "embed", {259 + 125, 32}, 1.0);
    for (const char* n : {"n0", "n1", "nf"}) tw.ones(m, n, {32});
    for (const char* n : {"wq", "wk", "wv", "wo"}) tw.param(m, n, {32, 32});
    tw.param(m, "rel_bias", {9, 2}, 1.0);
    tw.param(m, "f1", {64, 32});
    tw.param(m, "f2", {32, 64});
    m.register_attribute("head_dim", c10::IntType::get(), int64_t{16});
    m.define(kGlyph);
    tw.save(m, "glyph_encoder");
  }
  {
    torch::jit::Module m("TinyGlmImageTokenizer");
    tw.param(m, "patch_w", {32, 768});
    tw.param(m, "patch_b", {32}, 0.1);
    tw.param(m, "pos_table", {64, 32}, 0.5);
    for (const char* n : {"wq", "wk", "wv", "wo"}) tw.param(m, n, {32, 32});
    tw.param(m, "f1", {64, 32});
    tw.param(m, "f2", {32, 64});
    tw.param(m, "quant", {16, 32});
    tw.param(m, "codebook", {codes, 16}, 1.0);
    m.define(kImageTokenizer);
    tw.save(m, "image_tokenizer");
  }
  {
    torch::jit::Module m("TinyGlmArLm");
    tw.param(m, "embed", {vocab, d}, 1.0);
    for (const char* n : {"n1", "n2"}) {
      m.register_parameter(n, at::ones({nl, d}), false);
    }
    tw.ones(m, "nf", {d});
    tw.param(m, "wq", {nl, 32, d}, s);
    tw.param(m, "wk", {nl, 16, d}, s);
    tw.param(m, "wv", {nl, 16, d}, s);
    tw.param(m, "wo", {nl, d, 32}, s);
    tw.param(m, "wg", {nl, 2 * d, d}, s);
    tw.param(m, "wu", {nl, 2 * d, d}, s);
    tw.param(m, "wd", {nl, d, 2 * d}, 1.0 / std::sqrt(2.0 * d));
    tw.param(m, "head", {vision, d}, 2.0 * s);
    // Learned models put their mass on codebook codes; the bias does that here, so that a row samples a full grid
    // (tests raise the end-of-image logit to reach the early-EOS error).
    std::vector<float> bias(static_cast<std::size_t>(vision), -6.0f);
    for (int64_t i = 0; i < codes; ++i) bias[static_cast<std::size_t>(i)] = 0.0f;
    m.register_parameter("head_b", at::tensor(bias), false);
    m.register_attribute("layers", c10::IntType::get(), nl);
    m.define(kArLm);
    tw.save(m, "ar_lm");
  }
  {
    torch::jit::Module m("TinyGlmTransformer");
    tw.param(m, "img_in", {d, 64});
    tw.param(m, "img_in_b", {d}, 0.1);
    tw.param(m, "prior_table", {codes, d}, 1.0);
    tw.param(m, "p1", {d, d});
    tw.param(m, "p1b", {d}, 0.1);
    tw.param(m, "p2", {d, d});
    tw.param(m, "p2b", {d}, 0.5);
    tw.param(m, "g1", {d, 32});
    tw.param(m, "g1b", {d}, 0.1);
    tw.param(m, "t1", {d, 32});
    tw.param(m, "s1", {d, 32});
    tw.param(m, "mod_w", {nl, 6 * d, d}, s);
    tw.param(m, "mod_b", {nl, 6 * d}, 0.1);
    tw.param(m, "qkv", {nl, 3 * d, d}, s);
    tw.param(m, "wo", {nl, d, d}, s);
    tw.param(m, "f1", {nl, 4 * d, d}, s);
    tw.param(m, "f2", {nl, d, 4 * d}, 0.5 * s);
    tw.param(m, "out_w", {2 * d, d});
    tw.param(m, "out_b", {2 * d}, 0.1);
    tw.param(m, "proj_out", {64, d});
    tw.param(m, "proj_out_b", {64}, 0.1);
    m.register_attribute("depth", c10::IntType::get(), nl);
    m.register_attribute("heads", c10::IntType::get(), dit_heads);
    m.register_attribute("head_dim", c10::IntType::get(), dit_head_dim);
    m.define(kDit);
    tw.save(m, "transformer");
  }
  save_tiny_vae(tw, 16, false);

  tw.write_json("model_index.json", {{"_class_name", spec.pipeline_class},
                                     {"_diffusers_version", "0.40.0"},
                                     {"scheduler", {"diffusers", "FlowMatchEulerDiscreteScheduler"}},
                                     {"transformer", {"diffusers", "GlmImageTransformer2DModel"}},
                                     {"vae", {"diffusers", "AutoencoderKL"}}});
  // The shipped scheduler: dynamic shifting with the linear time shift, base/max shift 0.25/0.75.
  tw.write_json("scheduler/scheduler_config.json", {{"_class_name", "FlowMatchEulerDiscreteScheduler"},
                                                    {"num_train_timesteps", 1000},
                                                    {"shift", 1.0},
                                                    {"use_dynamic_shifting", true},
                                                    {"base_shift", 0.25},
                                                    {"max_shift", 0.75},
                                                    {"base_image_seq_len", 256},
                                                    {"time_shift_type", "linear"}});
  tw.write_json("text_encoder/config.json", {{"_class_name", "T5EncoderModel"}, {"d_model", 32}});
  tw.write_json("vision_language_encoder/config.json",
                {{"architectures", {"GlmImageForConditionalGeneration"}},
                 {"image_start_token_id", codes},
                 {"image_end_token_id", codes + 1},
                 {"image_token_id", *tokenizer.token_to_id("<|image|>")},
                 {"vq_config", {{"num_embeddings", codes}, {"embed_dim", 16}}},
                 {"text_config", {{"vision_vocab_size", vision}, {"vocab_size", vocab}, {"hidden_size", d}}}});
  tw.write_json("vision_language_encoder/generation_config.json",
                {{"do_sample", true}, {"temperature", 0.9}, {"top_p", 0.75}, {"eos_token_id", codes + 1}});
  tw.write_json("transformer/config.json", {{"_class_name", "GlmImageTransformer2DModel"},
                                            {"in_channels", 16},
                                            {"out_channels", 16},
                                            {"patch_size", 2},
                                            {"num_layers", nl},
                                            {"num_attention_heads", dit_heads},
                                            {"attention_head_dim", dit_head_dim},
                                            {"text_embed_dim", 32},
                                            {"prior_vq_quantizer_codebook_size", codes}});
  std::vector<double> mean, stdv;
  for (int c = 0; c < 16; ++c) {
    mean.push_back(0.05 * (c % 5) - 0.1);
    stdv.push_back(0.8 + 0.05 * c);
  }
  tw.write_json(
      "vae/config.json",
      with_tiny_vae_tiling(
          {{"_class_name", "AutoencoderKL"}, {"latent_channels", 16}, {"latents_mean", mean}, {"latents_std", stdv}}));
  tw.write_manifest({{"ar_prompt",
                      {{"prefix", ""},
                       {"image_block", fmt::format("<|dit_token_{}|><|image|><|dit_token_{}|>", codes, codes + 1)},
                       {"text_prefix", ""},
                       {"text_suffix", ""},
                       {"add_special_tokens", false}}}});
}

}  // namespace dg
