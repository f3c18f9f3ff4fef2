// Component signatures, transcribed from ../shared/design/bundle-contract.md §5 (adopted as is).
#include "diffgentor/bundle_contract.hpp"

#include <map>

namespace dg {

namespace {

std::vector<ComponentSpec> qwen_components() {
  return {
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
      {"vae_encoder", "vae", {{"image", "W", {"B", "3", "H", "W"}}}, {{"latent_mean", "W", {"B", "16", "h", "w"}}}},
      {"vae_decoder", "vae", {{"latents", "W", {"B", "16", "h", "w"}}}, {{"image", "W", {"B", "3", "H", "W"}}}},
  };
}

}  // namespace

const std::vector<ComponentSpec>& bundle_components(const std::string& model_type) {
  static const std::map<std::string, std::vector<ComponentSpec>> table = {
      {"qwen", qwen_components()},
      {"qwen_singleimg", qwen_components()},
  };
  static const std::vector<ComponentSpec> none;
  auto it = table.find(model_type);
  return it == table.end() ? none : it->second;
}

}  // namespace dg
