#pragma once
/// The autoregressive engine (docs/architecture.md, "AR engine"): drives a TorchScript LM with two methods,
///   prefill(input_ids i64 [1, n], position_ids i64 [P, 1, n], extra...) -> (logits f32 [1, V], present_k, present_v)
///   decode(input_ids i64 [1, 1], position_ids i64 [P, 1, 1], past_k, past_v) -> (logits f32 [1, V], present_k,
///   present_v)
/// where present_k/v are W [NL, 1, KVH, T, Dh] caches the engine hands back unchanged (decode returns them one
/// token longer), and samples each next token with transformers' warpers on the logits' device. P is the
/// number of position axes (3 for mRoPE, 1 for Mistral); `extra` are further prefill arguments (FLUX.2's upsampler:
/// the image embeddings). Used by GLM-Image's prior and FLUX.2-dev's prompt upsampler.
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "diffgentor/sampling.hpp"

namespace dg {

/// transformers' sampling warpers on f32 logits [1, V], in `_get_logits_processor` order: temperature (divide),
/// top-k (values below the k-th largest -> -inf), top-p (ascending sort, softmax, cumsum; drop where
/// cumsum <= 1 - p, always keep the largest). Returns the warped scores.
at::Tensor warp_logits(const at::Tensor& logits, const SamplingConfig& config);

/// Draws tokens for one row: softmax of the warped scores, then `at::multinomial(probs, 1)` with a generator
/// of its own on the logits' device, seeded with the row seed (the stream transformers draws from after
/// `torch.manual_seed(seed)`, without racing other rows on the global generator). Greedy configs take argmax.
class TokenSampler {
 public:
  TokenSampler(SamplingConfig config, const at::Device& device, uint64_t seed);
  int64_t next(const at::Tensor& logits);
  const SamplingConfig& config() const { return config_; }

 private:
  SamplingConfig config_;
  at::Generator gen_;
};

struct ArStats {
  int64_t prefill_tokens = 0;
  double prefill_ms = 0;
  int64_t decode_steps = 0;  ///< decode() calls
  double decode_ms = 0;
  int64_t sampled = 0;  ///< tokens sampled (the first comes from the prefill logits)
  double decode_tokens_per_s() const { return decode_ms > 0 ? decode_steps * 1000.0 / decode_ms : 0.0; }
};

struct ArRequest {
  at::Tensor input_ids;                   ///< i64 [1, n] on the LM's device
  at::Tensor position_ids;                ///< i64 [P, 1, n]
  std::vector<at::Tensor> prefill_extra;  ///< further prefill() arguments, after the positions
  /// Positions [P, 1, 1] for feeding the k-th generated token (k = 0 is the token sampled from prefill).
  std::function<at::Tensor(int64_t k)> decode_positions;
  int64_t max_new_tokens = 0;  ///< stop after this many tokens (no decode step after the last one)
  /// Parity: when set, the k-th fed token is teacher[k] instead of the sampled one (the sampled one is still
  /// returned), so the logits of every step can be compared with a reference run; the run ends where the teacher's
  /// tokens end or at the teacher's end token.
  const std::vector<int64_t>* teacher = nullptr;
  /// Parity: when defined ([steps, V] f32), step k samples from row k instead of the model's logits (a reference
  /// run's captured logits, so the sampler itself is compared); steps past its rows use the model's.
  at::Tensor sample_logits;
  /// Called with each step's logits [1, V] f32 before sampling (step 0 = prefill).
  std::function<void(int64_t step, const at::Tensor& logits)> on_logits;
  /// Called after each sampled token with (tokens so far, max_new_tokens), for progress.
  std::function<void(int64_t tokens, int64_t max_tokens)> on_token;
};

/// Runs prefill, then decode steps, sampling with `sampler`; stops after `max_new_tokens` tokens or right after
/// a token in the config's eos_token_ids (which is included in the result). `stop` is polled between steps; when
/// it returns true, generation ends early with the tokens so far.
std::vector<int64_t> ar_generate(torch::jit::Module& lm, const ArRequest& request, TokenSampler& sampler,
                                 ArStats& stats, const std::function<bool()>& stop = {});

}  // namespace dg
