// `diffgentor make-tiny --model_type longcat`: the tiny Qwen2.5-VL encoders (shared with the Qwen
// types), a FLUX-like DiT whose RoPE is built from the 3-D float ids (axes 4/6/6 of the head, theta
// 10000), a 16-channel VAE with FLUX.1's scaling and shift factors, and diffusers-style configs.
#include <nlohmann/json.hpp>

#include "diffgentor/model_registry.hpp"
#include "diffgentor/tokenizer.hpp"
#include "tiny_common.hpp"

using nlohmann::json;

namespace dg {

void make_tiny_longcat(const ModelSpec& spec, const std::string& dir, const TinyOptions& opt) {
  const int64_t d = opt.size == "small" ? 256 : 32, hd = d / 2;
  TinyWriter tw(dir, spec, opt);
  const json tok = tiny_qwen_tokenizer();
  tw.write_json("tokenizer/tokenizer.json", tok);
  tw.write_json("tokenizer/tokenizer_config.json", {{"pad_token", "<|endoftext|>"}, {"padding_side", "right"}});
  const Tokenizer tokenizer = Tokenizer::from_json(tok, "tiny tokenizer");
  write_tiny_qwen_vl(tw, d, tokenizer, "text_processor");  // LongCatImageEditPipeline.text_processor
  const std::vector<int64_t> axes{hd / 4, 3 * hd / 8, 3 * hd / 8};
  save_tiny_ids_dit(tw, d, IdsDit{64, d, axes, 10000.0, false, 0});
  save_tiny_vae(tw, 16, false);
  tw.write_json("model_index.json", {{"_class_name", spec.pipeline_class}, {"_diffusers_version", "0.40.0"}});
  tw.write_json("scheduler/scheduler_config.json", {{"_class_name", "FlowMatchEulerDiscreteScheduler"},
                                                    {"num_train_timesteps", 1000},
                                                    {"shift", 1.0},
                                                    {"use_dynamic_shifting", true},
                                                    {"base_shift", 0.5},
                                                    {"max_shift", 1.15},
                                                    {"base_image_seq_len", 256},
                                                    {"max_image_seq_len", 4096},
                                                    {"time_shift_type", "exponential"}});
  tw.write_json("vae/config.json", with_tiny_vae_tiling({{"_class_name", "AutoencoderKL"},
                                                         {"latent_channels", 16},
                                                         {"scaling_factor", 0.3611},
                                                         {"shift_factor", 0.1159}}));
  tw.write_json("transformer/config.json", {{"_class_name", "LongCatImageTransformer2DModel"},
                                            {"in_channels", 64},
                                            {"joint_attention_dim", d},
                                            {"num_attention_heads", 2},
                                            {"attention_head_dim", hd},
                                            {"axes_dims_rope", axes}});
  tw.write_manifest(json::object());
}

}  // namespace dg
