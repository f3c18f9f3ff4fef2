// Pinned by tests/data/scheduler/goldens.json: schedules produced by diffusers 58eb52c0 itself.
#include "diffgentor/scheduler.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "testdata.hpp"

using namespace dg;
using nlohmann::json;

namespace {

float golden(const json& v) {
  if (v.is_string()) return std::numeric_limits<float>::quiet_NaN();  // "NaN"
  return static_cast<float>(v.get<double>());
}

bool same(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

}  // namespace

TEST(Scheduler, ReproducesDiffusersGoldens) {
  DG_REQUIRE_TESTDATA("scheduler/goldens.json");
  const json g = json::parse(std::ifstream(dg::test::testdata_dir() + "/scheduler/goldens.json"));
  int checked = 0;
  for (const auto& e : g["entries"]) {
    const std::string model = e["model"];
    const SchedulerConfig cfg = SchedulerConfig::from_json(g["models"][model]["config"]);
    const int n = e["num_inference_steps"];
    const int64_t seq = e["image_seq_len"];
    const MuRule rule = model == "flux2"       ? MuRule::Flux2Empirical
                        : model == "glm_image" ? MuRule::Sqrt
                                               : MuRule::Linear;
    const double mu = compute_mu(rule, cfg, seq, n);
    EXPECT_DOUBLE_EQ(mu, e["mu"].get<double>()) << model << " n=" << n << " seq=" << seq;
    const Schedule s = model == "glm_image" ? glm_schedule(cfg, n, e["mu"].get<double>())
                                            : flow_match_schedule(cfg, n, e["mu"].get<double>());
    const std::string where = model + " " + std::to_string(int(e["width"])) + "x" + std::to_string(int(e["height"])) +
                              " n=" + std::to_string(n);
    ASSERT_EQ(s.sigmas.size(), e["sigmas"].size()) << where;
    for (std::size_t i = 0; i < s.sigmas.size(); ++i)
      EXPECT_TRUE(same(s.sigmas[i], golden(e["sigmas"][i])))
          << where << " sigma[" << i << "] = " << s.sigmas[i] << " want " << e["sigmas"][i];
    for (std::size_t i = 0; i < s.timesteps.size(); ++i) {
      EXPECT_TRUE(same(s.timesteps[i], golden(e["timesteps"][i]))) << where << " t[" << i << "]";
      if (model == "glm_image") {
        EXPECT_TRUE(same(s.timesteps[i] - 1.0f, golden(e["dit_timestep"][i]))) << where;
      } else if (!e["dit_timestep_bf16_bits"][i].is_string()) {
        EXPECT_EQ(bf16_bits(dit_timestep_bf16(s.timesteps[i])), e["dit_timestep_bf16_bits"][i].get<int>())
            << where << " dit[" << i << "]";
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, 105);
}

TEST(Scheduler, ReferenceTableRowsAndConfigParsing) {
  // docs/numerics.md, "Resolution-dependent mu": Qwen N=50 at 1024² gives mu 0.693548 and ends ..., 0.058476, 0.02, 0.
  const SchedulerConfig q = SchedulerConfig::from_json(json::parse(
      R"({"use_dynamic_shifting": true, "base_shift": 0.5, "max_shift": 0.9, "base_image_seq_len": 256,
          "max_image_seq_len": 8192, "time_shift_type": "exponential", "shift_terminal": 0.02})"));
  const double mu = compute_mu(MuRule::Linear, q, 4096, 50);
  EXPECT_NEAR(mu, 0.693548, 1e-6);
  const Schedule s = flow_match_schedule(q, 50, mu);
  EXPECT_EQ(s.sigmas.size(), 51u);
  EXPECT_NEAR(s.sigmas[1], 0.989701, 1e-6);
  EXPECT_NEAR(s.sigmas[49], 0.02, 1e-7);
  EXPECT_EQ(s.sigmas[50], 0.0f);
  EXPECT_NEAR(compute_mu(MuRule::Flux2Empirical, q, 4096, 4), 2.291180, 1e-6);
  EXPECT_THROW(SchedulerConfig::from_json(json::parse(R"({"time_shift_type": "cubic"})")), std::runtime_error);
  EXPECT_THROW(flow_match_schedule(q, 0, mu), std::invalid_argument);
}

TEST(Scheduler, Bf16Rounding) {
  EXPECT_EQ(bf16_bits(1.0f), 0x3F80);
  EXPECT_EQ(bf16_round(1000.0f), 1000.0f);
  EXPECT_EQ(bf16_round(997.0f), 996.0f);  // bf16 has a step of 4 in [512, 1024): ties go to even
  EXPECT_EQ(bf16_round(999.0f), 1000.0f);
  EXPECT_TRUE(std::isnan(bf16_round(std::nanf(""))));
}
