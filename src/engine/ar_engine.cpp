// The AR engine (include/diffgentor/ar_engine.hpp). The warpers port transformers 5.16
// generation/logits_process.py (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper) and the sampling
// step of GenerationMixin._sample (softmax of f32 scores, torch.multinomial(probs, 1)).
#include "diffgentor/ar_engine.hpp"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <limits>

namespace dg {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

at::Generator row_generator(const at::Device& device, uint64_t seed) {
  at::Generator g =
      device.is_cuda() ? at::detail::getCUDAHooks().getNewGenerator(device.index()) : at::detail::createCPUGenerator();
  g.set_current_seed(seed);
  return g;
}

}  // namespace

at::Tensor warp_logits(const at::Tensor& logits, const SamplingConfig& c) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  at::Tensor scores = logits;
  if (c.temperature != 1.0) scores = scores / c.temperature;
  if (c.top_k > 0) {
    const int64_t k = std::min<int64_t>(c.top_k, scores.size(-1));  // min_tokens_to_keep is 1
    const at::Tensor kth = std::get<0>(at::topk(scores, k)).select(-1, k - 1).unsqueeze(-1);
    scores = scores.masked_fill(scores < kth, neg_inf);
  }
  if (c.top_p < 1.0) {
    const auto [sorted, index] = at::sort(scores, /*dim=*/-1, /*descending=*/false);
    const at::Tensor cumulative = sorted.softmax(-1).cumsum(-1);
    at::Tensor remove = cumulative <= (1.0 - c.top_p);
    remove.select(-1, remove.size(-1) - 1).fill_(false);  // keep at least the most likely token
    scores = scores.masked_fill(remove.scatter(-1, index, remove), neg_inf);
  }
  return scores;
}

TokenSampler::TokenSampler(SamplingConfig config, const at::Device& device, uint64_t seed)
    : config_(std::move(config)), gen_(row_generator(device, seed)) {}

int64_t TokenSampler::next(const at::Tensor& logits) {
  if (!config_.do_sample) return logits.argmax(-1).item<int64_t>();
  const at::Tensor probs = warp_logits(logits, config_).softmax(-1);
  return at::multinomial(probs, 1, /*replacement=*/false, gen_).item<int64_t>();
}

std::vector<int64_t> ar_generate(torch::jit::Module& lm, const ArRequest& r, TokenSampler& sampler, ArStats& stats,
                                 const std::function<bool()>& stop) {
  std::vector<int64_t> out;
  if (r.max_new_tokens <= 0) return out;
  const auto& eos = sampler.config().eos_token_ids;
  const at::Device dev = r.input_ids.device();
  auto t0 = std::chrono::steady_clock::now();
  std::vector<c10::IValue> prefill_args{r.input_ids, r.position_ids};
  prefill_args.insert(prefill_args.end(), r.prefill_extra.begin(), r.prefill_extra.end());
  auto res = lm.get_method("prefill")(prefill_args).toTuple();
  at::Tensor logits = res->elements()[0].toTensor();
  at::Tensor past_k = res->elements()[1].toTensor(), past_v = res->elements()[2].toTensor();
  stats.prefill_tokens += r.input_ids.size(1);
  // Kernels run asynchronously; sampling reads the token back (.item()), so each lap ends synchronised: the
  // prefill lap includes the first sample, the decode lap the rest.
  for (int64_t step = 0;; ++step) {
    if (r.on_logits) r.on_logits(step, logits);
    const bool given = r.sample_logits.defined() && step < r.sample_logits.size(0);
    const int64_t token = sampler.next(given ? r.sample_logits[step].unsqueeze(0).to(logits.device()) : logits);
    ++stats.sampled;
    if (step == 0) {
      stats.prefill_ms += ms_since(t0);
      t0 = std::chrono::steady_clock::now();
    }
    out.push_back(token);
    if (r.on_token) r.on_token(static_cast<int64_t>(out.size()), r.max_new_tokens);
    if (static_cast<int64_t>(out.size()) >= r.max_new_tokens) break;
    int64_t fed = token;
    if (r.teacher) {  // the reference run's token is fed, and its end decides where the run ends
      if (step >= static_cast<int64_t>(r.teacher->size())) break;
      fed = (*r.teacher)[static_cast<std::size_t>(step)];
    }
    if (std::find(eos.begin(), eos.end(), fed) != eos.end()) break;
    if (stop && stop()) break;
    const at::Tensor ids = at::full({1, 1}, fed, at::TensorOptions().dtype(at::kLong).device(dev));
    res = lm.get_method("decode")({ids, r.decode_positions(step), past_k, past_v}).toTuple();
    logits = res->elements()[0].toTensor();
    past_k = res->elements()[1].toTensor();
    past_v = res->elements()[2].toTensor();
    ++stats.decode_steps;
  }
  if (stats.decode_steps > 0) stats.decode_ms += ms_since(t0);
  return out;
}

}  // namespace dg
