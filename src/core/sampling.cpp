// SamplingConfig (include/diffgentor/sampling.hpp): transformers GenerationConfig defaults and
// GenerationMixin._get_logits_processor's sampling warpers (temperature, top-k, top-p, in that order).
#include "diffgentor/sampling.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace dg {

SamplingConfig SamplingConfig::from_json(const nlohmann::json& j, const std::string& origin) {
  SamplingConfig c;
  const auto bad = [&](const std::string& what) { return std::invalid_argument(fmt::format("{}: {}", origin, what)); };
  try {
    if (j.contains("do_sample") && !j["do_sample"].is_null()) c.do_sample = j["do_sample"].get<bool>();
    if (j.contains("temperature") && !j["temperature"].is_null()) c.temperature = j["temperature"].get<double>();
    if (j.contains("top_k") && !j["top_k"].is_null()) c.top_k = j["top_k"].get<int64_t>();
    if (j.contains("top_p") && !j["top_p"].is_null()) c.top_p = j["top_p"].get<double>();
    if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
      const auto& e = j["eos_token_id"];
      if (e.is_array())
        for (const auto& v : e) c.eos_token_ids.push_back(v.get<int64_t>());
      else
        c.eos_token_ids.push_back(e.get<int64_t>());
    }
  } catch (const nlohmann::json::exception& e) {
    throw bad(fmt::format("a sampling setting has the wrong type ({})", e.what()));
  }
  if (!(c.temperature > 0.0)) throw bad(fmt::format("temperature {} must be positive", c.temperature));
  if (c.top_k < 0) throw bad(fmt::format("top_k {} must not be negative", c.top_k));
  if (!(c.top_p > 0.0 && c.top_p <= 1.0)) throw bad(fmt::format("top_p {} must be in (0, 1]", c.top_p));
  // Anything else that changes the token distribution in transformers: refused rather than silently ignored.
  const auto set = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  const auto number_is = [&](const char* key, double neutral) {
    return !set(key) || (j[key].is_number() && j[key].get<double>() == neutral);
  };
  std::vector<std::string> unsupported;
  if (!number_is("repetition_penalty", 1.0)) unsupported.push_back("repetition_penalty");
  if (!number_is("typical_p", 1.0)) unsupported.push_back("typical_p");
  if (!number_is("epsilon_cutoff", 0.0)) unsupported.push_back("epsilon_cutoff");
  if (!number_is("eta_cutoff", 0.0)) unsupported.push_back("eta_cutoff");
  if (!number_is("no_repeat_ngram_size", 0.0)) unsupported.push_back("no_repeat_ngram_size");
  if (!number_is("encoder_repetition_penalty", 1.0)) unsupported.push_back("encoder_repetition_penalty");
  if (!number_is("num_beams", 1.0)) unsupported.push_back("num_beams");
  if (!number_is("guidance_scale", 1.0)) unsupported.push_back("guidance_scale");
  if (!number_is("min_length", 0.0)) unsupported.push_back("min_length");
  if (!number_is("min_new_tokens", 0.0)) unsupported.push_back("min_new_tokens");
  if (set("renormalize_logits") && j["renormalize_logits"] != false) unsupported.push_back("renormalize_logits");
  for (const char* key : {"min_p", "top_h", "bad_words_ids", "suppress_tokens", "begin_suppress_tokens",
                          "forced_bos_token_id", "forced_eos_token_id", "forced_decoder_ids", "sequence_bias",
                          "watermarking_config", "exponential_decay_length_penalty"})
    if (set(key) && !(j[key].is_array() && j[key].empty())) unsupported.push_back(key);
  if (!unsupported.empty())
    throw bad(
        fmt::format("sets {}, which this sampler does not implement (it applies temperature, top_k and "
                    "top_p as transformers does); remove the setting or re-export",
                    fmt::join(unsupported, ", ")));
  return c;
}

std::string SamplingConfig::describe() const {
  if (!do_sample) return "greedy";
  std::vector<std::string> parts;
  if (temperature != 1.0) parts.push_back(fmt::format("temperature {}", temperature));
  if (top_k > 0) parts.push_back(fmt::format("top_k {}", top_k));
  if (top_p < 1.0) parts.push_back(fmt::format("top_p {}", top_p));
  return parts.empty() ? "plain multinomial" : fmt::format("{}", fmt::join(parts, ", "));
}

}  // namespace dg
