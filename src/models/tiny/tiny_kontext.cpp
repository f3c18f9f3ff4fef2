// `diffgentor make-tiny --model_type flux1_kontext`: a CLIP-like text tower pooled at the first argmax
// of the ids (the tiny tokenizer gives EOS the largest id, as CLIP's does), a T5-like encoder whose pads
// attend, a FLUX.1-style DiT with pooled projection and guidance embedding (RoPE from 3-D float ids,
// theta 10000), a 16-channel VAE with FLUX.1's scaling/shift, and tiny CLIP BPE / T5 Unigram
// tokenizer.json files of the real layouts.
#include <ATen/ATen.h>
#include <torch/script.h>

#include <nlohmann/json.hpp>

#include "diffgentor/model_registry.hpp"
#include "diffgentor/text_regex.hpp"
#include "diffgentor/tokenizer.hpp"
#include "tiny_common.hpp"

using nlohmann::json;

namespace dg {

namespace {

const char* kClip = R"JIT(
def forward(self, input_ids: Tensor) -> Tensor:
    B = input_ids.size(0)
    L = input_ids.size(1)
    x = torch.embedding(self.embed, input_ids) + self.pos.narrow(0, 0, L).unsqueeze(0)
    d = x.size(-1)
    h = torch.layer_norm(x, [d])
    q = torch.linear(h, self.wq)
    k = torch.linear(h, self.wk)
    v = torch.linear(h, self.wv)
    s = torch.matmul(q, k.transpose(1, 2)) * (d ** -0.5)
    idx = torch.arange(L, device=x.device)
    s = s.masked_fill((idx.unsqueeze(0) <= idx.unsqueeze(1)).logical_not().unsqueeze(0), -30000.0)
    x = x + torch.linear(torch.matmul(s.softmax(-1), v), self.wo)
    x = x + torch.linear(torch.gelu(torch.linear(torch.layer_norm(x, [d]), self.f1)), self.f2)
    x = torch.layer_norm(x, [d])
    eos = input_ids.argmax(-1).view(B, 1, 1).expand(B, 1, d)
    return torch.gather(x, 1, eos).squeeze(1)
)JIT";

const char* kT5 = R"JIT(
def forward(self, input_ids: Tensor) -> Tensor:
    L = input_ids.size(1)
    x = torch.embedding(self.embed, input_ids) + self.pos.narrow(0, 0, L).unsqueeze(0)
    d = x.size(-1)
    xf = x.float()
    h = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * self.n0
    s = torch.matmul(torch.linear(h, self.wq), torch.linear(h, self.wk).transpose(1, 2)) * (d ** -0.5)
    x = x + torch.linear(torch.matmul(s.softmax(-1), torch.linear(h, self.wv)), self.wo)
    xf = x.float()
    h = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * self.n1
    x = x + torch.linear(torch.relu(torch.linear(h, self.f1)), self.f2)
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * self.n2
)JIT";

// CLIP's tokenizer.json layout: lower-casing normalizer, the CLIP split regex (matches kept), GPT-2
// byte-level with its regex, "</w>" word ends, BOS/EOS via RobertaProcessing. EOS has the largest id.
json tiny_clip_tokenizer() {
  json vocab = json::object();
  int id = 0;
  for (int b = 0; b < 256; ++b) vocab[byte_to_unicode(static_cast<unsigned char>(b))] = id++;
  for (int b = 0; b < 256; ++b) vocab[byte_to_unicode(static_cast<unsigned char>(b)) + "</w>"] = id++;
  json merges = json::array();
  for (const auto& [a, b] :
       std::vector<std::pair<std::string, std::string>>{{"c", "a"}, {"ca", "t</w>"}, {"t", "h"}, {"th", "e</w>"}}) {
    vocab[a + b] = id++;
    merges.push_back(a + " " + b);
  }
  const int bos = id++, eos = id++;
  return {{"version", "1.0"},
          {"added_tokens",
           {{{"id", bos}, {"content", "<|startoftext|>"}, {"special", true}, {"normalized", true}},
            {{"id", eos}, {"content", "<|endoftext|>"}, {"special", true}, {"normalized", false}}}},
          {"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             {{{"type", "NFC"}},
              {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", " "}},
              {{"type", "Lowercase"}}}}}},
          {"pre_tokenizer",
           {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"},
               {"pattern", {{"Regex", R"('s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+)"}}},
               {"behavior", "Removed"},
               {"invert", true}},
              {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}}},
          {"post_processor",
           {{"type", "RobertaProcessing"}, {"sep", {"<|endoftext|>", eos}}, {"cls", {"<|startoftext|>", bos}}}},
          {"model",
           {{"type", "BPE"},
            {"vocab", vocab},
            {"merges", merges},
            {"end_of_word_suffix", "</w>"},
            {"unk_token", "<|endoftext|>"}}}};
}

// T5's tokenizer.json layout without the precompiled charsmap: Strip(right), Replace(" {2,}"),
// Metaspace(first), a Unigram vocabulary, "$A </s>".
json tiny_t5_tokenizer() {
  json pieces = json::array({json::array({"<pad>", 0.0}), json::array({"</s>", 0.0}), json::array({"<unk>", 0.0}),
                             json::array({"\u2581", -2.0})});
  for (const char* w : {"\u2581a", "\u2581the", "\u2581cat", "\u2581red", "\u2581make", "\u2581sign"})
    pieces.push_back(json::array({w, -3.0}));
  const std::string chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()";
  for (char c : chars) pieces.push_back(json::array({std::string(1, c), -5.0}));
  return {{"version", "1.0"},
          {"added_tokens",
           {{{"id", 0}, {"content", "<pad>"}, {"special", true}, {"normalized", false}},
            {{"id", 1}, {"content", "</s>"}, {"special", true}, {"normalized", false}},
            {{"id", 2}, {"content", "<unk>"}, {"special", true}, {"normalized", false}}}},
          {"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             {{{"type", "Strip"}, {"strip_left", false}, {"strip_right", true}},
              {{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", "\u2581"}}}}}},
          {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}}},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single",
             {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
            {"special_tokens", {{"</s>", {{"id", "</s>"}, {"ids", {1}}, {"tokens", {"</s>"}}}}}}}},
          {"model", {{"type", "Unigram"}, {"unk_id", 2}, {"vocab", pieces}, {"byte_fallback", false}}}};
}

}  // namespace

void make_tiny_kontext(const ModelSpec& spec, const std::string& dir, const TinyOptions& opt) {
  const int64_t d = opt.size == "small" ? 256 : 32, hd = d / 2;
  TinyWriter tw(dir, spec, opt);
  const json clip_tok = tiny_clip_tokenizer(), t5_tok = tiny_t5_tokenizer();
  tw.write_json("tokenizer/tokenizer.json", clip_tok);
  tw.write_json("tokenizer/tokenizer_config.json", {{"pad_token", "<|endoftext|>"}, {"model_max_length", 77}});
  tw.write_json("tokenizer_2/tokenizer.json", t5_tok);
  tw.write_json("tokenizer_2/tokenizer_config.json", {{"pad_token", "<pad>"}, {"model_max_length", 512}});
  const auto clip_vocab = static_cast<int64_t>(Tokenizer::from_json(clip_tok, "tiny clip").vocab_size());
  const auto t5_vocab = static_cast<int64_t>(Tokenizer::from_json(t5_tok, "tiny t5").vocab_size());
  {
    torch::jit::Module m("TinyClipText");
    tw.param(m, "embed", {clip_vocab, d}, 1.0);
    tw.param(m, "pos", {77, d}, 0.5);
    for (const char* n : {"wq", "wk", "wv", "wo"}) tw.param(m, n, {d, d});
    tw.param(m, "f1", {2 * d, d});
    tw.param(m, "f2", {d, 2 * d});
    m.define(kClip);
    tw.save(m, "text_encoder");
  }
  {
    torch::jit::Module m("TinyT5Encoder");
    tw.param(m, "embed", {t5_vocab, d}, 1.0);
    tw.param(m, "pos", {512, d}, 0.5);
    for (const char* n : {"n0", "n1", "n2"}) tw.ones(m, n, {d});
    for (const char* n : {"wq", "wk", "wv", "wo"}) tw.param(m, n, {d, d});
    tw.param(m, "f1", {2 * d, d});
    tw.param(m, "f2", {d, 2 * d});
    m.define(kT5);
    tw.save(m, "text_encoder_2");
  }
  const std::vector<int64_t> axes{hd / 4, 3 * hd / 8, 3 * hd / 8};
  save_tiny_ids_dit(tw, d, IdsDit{64, d, axes, 10000.0, true, d});
  save_tiny_vae(tw, 16, false);
  tw.write_json("model_index.json", {{"_class_name", spec.pipeline_class}, {"_diffusers_version", "0.40.0"}});
  tw.write_json("scheduler/scheduler_config.json", {{"_class_name", "FlowMatchEulerDiscreteScheduler"},
                                                    {"num_train_timesteps", 1000},
                                                    {"shift", 3.0},
                                                    {"use_dynamic_shifting", true},
                                                    {"base_shift", 0.5},
                                                    {"max_shift", 1.15},
                                                    {"base_image_seq_len", 256},
                                                    {"max_image_seq_len", 4096}});
  tw.write_json("vae/config.json", with_tiny_vae_tiling({{"_class_name", "AutoencoderKL"},
                                                         {"latent_channels", 16},
                                                         {"scaling_factor", 0.3611},
                                                         {"shift_factor", 0.1159}}));
  tw.write_json("transformer/config.json", {{"_class_name", "FluxTransformer2DModel"},
                                            {"in_channels", 64},
                                            {"joint_attention_dim", d},
                                            {"pooled_projection_dim", d},
                                            {"guidance_embeds", true},
                                            {"axes_dims_rope", axes}});
  tw.write_json("text_encoder/config.json", {{"_class_name", "CLIPTextModel"},
                                             {"hidden_size", d},
                                             {"max_position_embeddings", 77},
                                             {"vocab_size", clip_vocab}});
  tw.write_json("text_encoder_2/config.json",
                {{"_class_name", "T5EncoderModel"}, {"d_model", d}, {"vocab_size", t5_vocab}});
  tw.write_manifest(json::object());
}

}  // namespace dg
