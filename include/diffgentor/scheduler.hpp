#pragma once
/// Flow-match Euler schedules, ported from diffusers' FlowMatchEulerDiscreteScheduler.set_timesteps
/// and the pipelines' mu functions (diffusers 58eb52c0; docs/numerics.md, "Sigma schedule" and "Resolution-dependent
/// mu"). The arithmetic follows NumPy >= 2 float32 semantics step by step, so every sigma equals diffusers' float32
/// value exactly (pinned by tests/data/scheduler/goldens.json).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dg {

/// The fields of `scheduler/scheduler_config.json` that these models use.
struct SchedulerConfig {
  double shift = 1.0;
  bool use_dynamic_shifting = false;
  double base_shift = 0.5;
  double max_shift = 1.15;
  int64_t base_image_seq_len = 256;
  int64_t max_image_seq_len = 4096;
  std::string time_shift_type = "exponential";  ///< "exponential" or "linear"
  std::optional<double> shift_terminal;
  int num_train_timesteps = 1000;

  /// Reads a scheduler_config.json object; absent keys keep diffusers' defaults.
  static SchedulerConfig from_json(const nlohmann::json& j);
};

/// How a pipeline turns the noise-token count into `mu`.
enum class MuRule {
  Linear,          ///< calculate_shift (Qwen, Kontext, LongCat)
  Flux2Empirical,  ///< compute_empirical_mu (FLUX.2, FLUX.2-klein); depends on the step count
  Sqrt,            ///< GLM-Image: sqrt(seq / base_seq) * max_shift + base_shift
};

/// mu for `image_seq_len` noise tokens (reference tokens excluded), in double like the pipelines.
double compute_mu(MuRule rule, const SchedulerConfig& config, int64_t image_seq_len, int num_steps);

struct Schedule {
  std::vector<float> sigmas;     ///< N + 1 values, the last 0
  std::vector<float> timesteps;  ///< N values, sigmas[:N] * 1000 in float32
};

/// set_timesteps(sigmas = linspace(1, 1/N, N), mu) as Qwen, FLUX and LongCat call it.
Schedule flow_match_schedule(const SchedulerConfig& config, int num_steps, double mu);

/// GLM-Image's call: sigmas = int(linspace(1000, 1, N + 1)[:-1]) / 1000, then the same shift.
Schedule glm_schedule(const SchedulerConfig& config, int num_steps, double mu);

/// float32 -> bfloat16 bits, round to nearest even (NaN stays NaN), as torch's .to(bfloat16).
uint16_t bf16_bits(float x);
float bf16_to_float(uint16_t bits);
inline float bf16_round(float x) { return bf16_to_float(bf16_bits(x)); }

/// The timestep fed to the DiT by Qwen, FLUX.2, Kontext and LongCat with bf16 latents:
/// `t.to(bfloat16) / 1000` computed in bfloat16 (docs/numerics.md, "DiT timestep").
float dit_timestep_bf16(float t);

}  // namespace dg
