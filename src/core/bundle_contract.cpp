// Component signatures, transcribed from ../shared/design/bundle-contract.md §5 (adopted as is).
#include "diffgentor/bundle_contract.hpp"

#include <map>

namespace dg {

namespace {

std::vector<ComponentSpec> vae(int channels);

std::vector<ComponentSpec> qwen_components() {
  std::vector<ComponentSpec> out{
      {"vision_encoder", "text_encoder",
       {{"pixel_values", "float32", {"P", "1176"}},
        {"vision_pos", "int64", {"P", "2"}},
        {"window_seg", "int64", {"P"}},
        {"image_seg", "int64", {"P"}}},
       {{"image_embeds", "W", {"N", "D"}}}},
      {"text_encoder", "text_encoder",
       {{"input_ids", "int64", {"B", "L"}},
        {"attention_mask", "int64", {"B", "L"}},
        {"position_ids", "int64", {"3", "B", "L"}},
        {"image_embeds", "W", {"N", "D"}}},
       {{"last_hidden_state", "W", {"B", "L", "D"}}}},
      {"transformer", "transformer",
       {{"hidden_states", "W", {"B", "S", "64"}},
        {"encoder_hidden_states", "W", {"B", "L", "D"}},
        {"timestep", "float32", {"B"}},
        {"img_freqs", "float32", {"S", "R", "2"}},
        {"txt_freqs", "float32", {"L", "R", "2"}},
        {"modulate_index", "int64", {"B", "S"}}},
       {{"sample", "W", {"B", "S", "64"}}}},
  };
  for (auto& v : vae(16)) out.push_back(v);
  return out;
}

std::vector<ComponentSpec> vae(int channels) {
  const std::string c = std::to_string(channels);
  return {{"vae_encoder", "vae", {{"image", "W", {"B", "3", "H", "W"}}}, {{"latent_mean", "W", {"B", c, "h", "w"}}}},
          {"vae_decoder", "vae", {{"latents", "W", {"B", c, "h", "w"}}}, {{"image", "W", {"B", "3", "H", "W"}}}}};
}

std::vector<ComponentSpec> qwen_vl_encoders() {
  auto q = qwen_components();
  return {q[0], q[1]};
}

std::vector<ComponentSpec> longcat_components() {
  auto out = qwen_vl_encoders();
  out.push_back({"transformer", "transformer",
                 {{"hidden_states", "W", {"B", "S", "64"}},
                  {"encoder_hidden_states", "W", {"B", "L", "D"}},
                  {"timestep", "float32", {"B"}},
                  {"img_ids", "float32", {"S", "3"}},
                  {"txt_ids", "float32", {"L", "3"}}},
                 {{"sample", "W", {"B", "S", "64"}}}});
  for (auto& v : vae(16)) out.push_back(v);
  return out;
}

std::vector<ComponentSpec> flux2_components(bool guidance) {
  std::vector<ComponentSpec> out{
      {"text_encoder", "text_encoder",
       {{"input_ids", "int64", {"B", "512"}}, {"attention_mask", "int64", {"B", "512"}}, {"position_ids", "int64", {"B", "512"}}},
       {{"prompt_embeds", "W", {"B", "512", "J"}}}}};
  ComponentSpec dit{"transformer", "transformer",
                    {{"hidden_states", "W", {"B", "S", "128"}}, {"encoder_hidden_states", "W", {"B", "L", "J"}},
                     {"timestep", "float32", {"B"}}},
                    {{"sample", "W", {"B", "S", "128"}}}};
  if (guidance) dit.inputs.push_back({"guidance", "float32", {"B"}});
  dit.inputs.push_back({"img_ids", "int64", {"S", "4"}});
  dit.inputs.push_back({"txt_ids", "int64", {"L", "4"}});
  out.push_back(dit);
  for (auto& v : vae(32)) out.push_back(v);
  return out;
}

std::vector<ComponentSpec> kontext_components() {
  std::vector<ComponentSpec> out{
      {"text_encoder", "text_encoder", {{"input_ids", "int64", {"B", "77"}}}, {{"pooled", "W", {"B", "768"}}}},
      {"text_encoder_2", "text_encoder_2", {{"input_ids", "int64", {"B", "512"}}},
       {{"last_hidden_state", "W", {"B", "512", "4096"}}}},
      {"transformer", "transformer",
       {{"hidden_states", "W", {"B", "S", "64"}}, {"encoder_hidden_states", "W", {"B", "512", "4096"}},
        {"pooled_projections", "W", {"B", "768"}}, {"timestep", "float32", {"B"}}, {"guidance", "float32", {"B"}},
        {"img_ids", "float32", {"S", "3"}}, {"txt_ids", "float32", {"L", "3"}}},
       {{"sample", "W", {"B", "S", "64"}}}}};
  for (auto& v : vae(16)) out.push_back(v);
  return out;
}

std::vector<ComponentSpec> glm_components() {
  std::vector<ComponentSpec> out{
      {"glyph_encoder", "text_encoder", {{"input_ids", "int64", {"G", "Lg"}}, {"attention_mask", "int64", {"G", "Lg"}}},
       {{"last_hidden_state", "W", {"G", "Lg", "1472"}}}},
      {"image_tokenizer", "vision_language_encoder",
       {{"pixel_values", "float32", {"P", "768"}}, {"patch_pos", "int64", {"P", "2"}},
        {"patch_grid", "int64", {"P", "2"}}, {"image_seg", "int64", {"P"}}},
       {{"image_tokens", "int64", {"P"}}}},
      {"ar_lm", "vision_language_encoder",
       {{"input_ids", "int64", {"1", "n"}}, {"position_ids", "int64", {"3", "1", "n"}},
        {"past_k", "W", {"NL", "1", "KVH", "T", "Dh"}}, {"past_v", "W", {"NL", "1", "KVH", "T", "Dh"}}},
       {{"logits", "float32", {"1", "V"}}, {"present_k", "W", {"NL", "1", "KVH", "T+n", "Dh"}},
        {"present_v", "W", {"NL", "1", "KVH", "T+n", "Dh"}}}},
      {"transformer", "transformer",
       {{"hidden_states", "W", {"B", "16", "h", "w"}}, {"encoder_hidden_states", "W", {"B", "Lg", "1472"}},
        {"prior_token_id", "int64", {"B", "S"}}, {"prior_token_drop", "bool", {"B", "S"}},
        {"timestep", "float32", {"B"}}, {"target_size", "float32", {"B", "2"}}, {"crop_coords", "float32", {"B", "2"}},
        {"rope_cos", "float32", {"S", "40"}}, {"rope_sin", "float32", {"S", "40"}},
        {"kv_k", "W", {"NL", "1", "R", "64", "40"}}, {"kv_v", "W", {"NL", "1", "R", "64", "40"}}},
       {{"sample", "W", {"B", "16", "h", "w"}}}},
      {"transformer", "transformer",
       {{"hidden_states", "W", {"1", "16", "hr", "wr"}}, {"prior_token_id", "int64", {"1", "Sr"}},
        {"target_size", "float32", {"1", "2"}}, {"rope_cos", "float32", {"Sr", "40"}}, {"rope_sin", "float32", {"Sr", "40"}}},
       {{"kv_k", "W", {"NL", "1", "Sr", "64", "40"}}, {"kv_v", "W", {"NL", "1", "Sr", "64", "40"}}},
       "write_kv"}};
  for (auto& v : vae(16)) out.push_back(v);
  return out;
}

}  // namespace

const std::vector<ComponentSpec>& bundle_components(const std::string& model_type) {
  static const std::map<std::string, std::vector<ComponentSpec>> table = {
      {"qwen", qwen_components()},
      {"qwen_singleimg", qwen_components()},
      {"longcat", longcat_components()},
      {"flux2", flux2_components(true)},
      {"flux2_klein", flux2_components(false)},
      {"flux1_kontext", kontext_components()},
      {"glm_image", glm_components()},
  };
  static const std::vector<ComponentSpec> none;
  auto it = table.find(model_type);
  return it == table.end() ? none : it->second;
}

}  // namespace dg
