// Port of FlowMatchEulerDiscreteScheduler.set_timesteps (time_shift, stretch_shift_to_terminal) and
// of calculate_shift / compute_empirical_mu, diffusers 58eb52c0. Python scalars meeting float32
// arrays become float32 first (NumPy >= 2, NEP 50), so each step below is a float32 operation.
#include "diffgentor/scheduler.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace dg {

SchedulerConfig SchedulerConfig::from_json(const nlohmann::json& j) {
  SchedulerConfig c;
  auto num = [&](const char* key, auto& field) {
    if (j.contains(key) && j[key].is_number()) field = j[key].get<std::decay_t<decltype(field)>>();
  };
  num("shift", c.shift);
  num("base_shift", c.base_shift);
  num("max_shift", c.max_shift);
  num("base_image_seq_len", c.base_image_seq_len);
  num("max_image_seq_len", c.max_image_seq_len);
  num("num_train_timesteps", c.num_train_timesteps);
  if (j.contains("use_dynamic_shifting") && j["use_dynamic_shifting"].is_boolean())
    c.use_dynamic_shifting = j["use_dynamic_shifting"].get<bool>();
  if (j.contains("time_shift_type") && j["time_shift_type"].is_string())
    c.time_shift_type = j["time_shift_type"].get<std::string>();
  if (j.contains("shift_terminal") && j["shift_terminal"].is_number() && j["shift_terminal"].get<double>() != 0.0)
    c.shift_terminal = j["shift_terminal"].get<double>();
  if (c.time_shift_type != "exponential" && c.time_shift_type != "linear")
    throw std::runtime_error("scheduler_config.json: time_shift_type must be 'exponential' or 'linear', not '" +
                             c.time_shift_type + "'");
  return c;
}

double compute_mu(MuRule rule, const SchedulerConfig& c, int64_t seq, int num_steps) {
  switch (rule) {
    case MuRule::Linear: {
      const double m = (c.max_shift - c.base_shift) / double(c.max_image_seq_len - c.base_image_seq_len);
      const double b = c.base_shift - m * double(c.base_image_seq_len);
      return double(seq) * m + b;
    }
    case MuRule::Flux2Empirical: {
      const double a1 = 8.73809524e-05, b1 = 1.89833333, a2 = 0.00016927, b2 = 0.45666666;
      if (seq > 4300) return a2 * double(seq) + b2;
      const double m200 = a2 * double(seq) + b2, m10 = a1 * double(seq) + b1;
      const double a = (m200 - m10) / 190.0, b = m200 - 200.0 * a;
      return a * double(num_steps) + b;
    }
    case MuRule::Sqrt: return std::pow(double(seq) / double(c.base_image_seq_len), 0.5) * c.max_shift + c.base_shift;
  }
  return 0.0;
}

namespace {

// time_shift (dynamic) or the static shift, then stretch_shift_to_terminal; appends the final 0.
Schedule finish(const SchedulerConfig& c, std::vector<float> s, double mu) {
  for (float& t : s) {
    if (c.use_dynamic_shifting) {
      const float inv = 1.0f / t - 1.0f;  // (1/t - 1) ** 1.0
      if (c.time_shift_type == "exponential") {
        const float e = static_cast<float>(std::exp(mu));
        t = e / (e + inv);
      } else {
        const float m = static_cast<float>(mu);
        t = m / (m + inv);
      }
    } else {
      const float shift = static_cast<float>(c.shift);
      t = shift * t / (1.0f + (shift - 1.0f) * t);
    }
  }
  if (c.shift_terminal) {
    const float scale = (1.0f - s.back()) / static_cast<float>(1.0 - *c.shift_terminal);
    for (float& t : s) t = 1.0f - (1.0f - t) / scale;
  }
  Schedule out;
  for (float t : s) out.timesteps.push_back(t * static_cast<float>(c.num_train_timesteps));
  out.sigmas = std::move(s);
  out.sigmas.push_back(0.0f);
  return out;
}

}  // namespace

Schedule flow_match_schedule(const SchedulerConfig& c, int n, double mu) {
  if (n < 1) throw std::invalid_argument("num_inference_steps must be at least 1");
  // np.linspace(1.0, 1/n, n) in float64 (start + i*step, last set to stop), then astype(float32).
  const double start = 1.0, stop = 1.0 / n;
  std::vector<float> s(static_cast<std::size_t>(n));
  const double step = n > 1 ? (stop - start) / double(n - 1) : 0.0;
  for (int i = 0; i < n; ++i) s[i] = static_cast<float>(double(i) * step + start);
  if (n > 1) s.back() = static_cast<float>(stop);
  return finish(c, std::move(s), mu);
}

Schedule glm_schedule(const SchedulerConfig& c, int n, double mu) {
  if (n < 1) throw std::invalid_argument("num_inference_steps must be at least 1");
  // timesteps = linspace(1000, 1, n + 1)[:-1].astype(int64).astype(float32); sigmas = timesteps / 1000.
  const double start = 1000.0, stop = 1.0, step = (stop - start) / double(n);
  std::vector<float> s(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto t = static_cast<int64_t>(double(i) * step + start);
    s[i] = static_cast<float>(t) / 1000.0f;
  }
  return finish(c, std::move(s), mu);
}

uint16_t bf16_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if (std::isnan(x)) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float bf16_to_float(uint16_t bits) {
  const uint32_t u = uint32_t(bits) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

float dit_timestep_bf16(float t) { return bf16_round(bf16_round(t) / 1000.0f); }

}  // namespace dg
