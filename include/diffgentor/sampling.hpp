#pragma once
/// Token sampling settings of an autoregressive LM, read from its `generation_config.json` with transformers'
/// defaults (`GenerationConfig`: temperature 1, top_k 50, top_p 1). Torch-free; the sampler itself is in
/// include/diffgentor/ar_engine.hpp.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dg {

struct SamplingConfig {
  bool do_sample = true;     ///< false: greedy (argmax); the pipelines that sample force true, as upstream does
  double temperature = 1.0;  ///< applied when != 1
  int64_t top_k = 50;        ///< applied when > 0
  double top_p = 1.0;        ///< applied when < 1
  std::vector<int64_t> eos_token_ids;

  /// Reads `generation_config.json` (`origin` names it in errors). Absent keys keep transformers' defaults.
  /// Settings that would add a logits processor this sampler does not implement (repetition_penalty != 1,
  /// guidance_scale, min_p, typical_p, no_repeat_ngram_size, bad_words_ids, suppress_tokens, ...) are refused with
  /// std::invalid_argument, so a bundle never samples differently from transformers without saying so.
  static SamplingConfig from_json(const nlohmann::json& generation_config, const std::string& origin);
  /// "temperature 0.9, top_k 50, top_p 0.75" (what is applied, in transformers' warper order).
  std::string describe() const;
};

}  // namespace dg
