// GLM-Image on its tiny bundle: the sampler against transformers' warpers and draws
// (tests/data/glm_image/goldens.json), the AR engine's loop, every input of every component method, and the
// pipeline (sizes, references, CFG, timestep modes, row errors).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/script.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <tuple>

#include "diffgentor/ar_engine.hpp"
#include "diffgentor/glm_image_inputs.hpp"
#include "fixture.hpp"
#include "testdata.hpp"

using namespace dg;
using dg::test::counter;
using dg::test::pattern;
using dg::test::Runner;
using dg::test::tiny_bundle;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const json& goldens() { return dg::test::testdata_json("glm_image/goldens.json"); }

at::Tensor row(const json& values) { return at::tensor(values.get<std::vector<float>>()).view({1, -1}); }

torch::jit::Module load(const std::string& component) {
  auto m = torch::jit::load(tiny_bundle("glm_image") + "/torchscript/" + component + ".pt");
  m.eval();
  return m;
}

// Runs `method` on `inputs`, then once per input with that input changed, and expects every output to move.
void expect_every_input_matters(torch::jit::Module& m, const std::string& method, std::vector<c10::IValue> inputs,
                                const std::vector<std::function<c10::IValue(const c10::IValue&)>>& change) {
  c10::InferenceMode guard;
  auto first_output = [&](const std::vector<c10::IValue>& in) {
    const c10::IValue out = m.get_method(method)(in);
    return (out.isTuple() ? out.toTuple()->elements()[0] : out).toTensor().to(at::kDouble);
  };
  const at::Tensor base = first_output(inputs);
  ASSERT_EQ(change.size(), inputs.size()) << method;
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    std::vector<c10::IValue> in = inputs;
    in[k] = change[k](inputs[k]);
    const at::Tensor out = first_output(in);
    EXPECT_TRUE(out.sizes() != base.sizes() || !at::equal(out, base)) << method << ": input " << k << " is ignored";
  }
}

c10::IValue plus(const c10::IValue& v, double d) { return v.toTensor() + d; }

// A copy of the tiny bundle whose LM head bias favours vision id `favoured`.
std::string bundle_favouring(int64_t favoured, const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("dg_glm_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::copy(tiny_bundle("glm_image"), dir, fs::copy_options::recursive);
  auto lm = torch::jit::load((dir / "torchscript/ar_lm.pt").string());
  at::Tensor bias = lm.attr("head_b").toTensor().clone();
  bias[favoured] = 20.0;
  lm.setattr("head_b", bias);
  lm.save((dir / "torchscript/ar_lm.pt").string());
  return dir.string();
}

}  // namespace

TEST(GlmImageSampler, WarpersAndDrawsMatchTransformers) {
  for (const auto& c : goldens()["sampler"]) {
    SamplingConfig cfg;
    cfg.temperature = c["temperature"];
    cfg.top_k = c["top_k"];
    cfg.top_p = c["top_p"];
    const at::Tensor warped = warp_logits(row(c["logits"][0]), cfg);
    const auto& want = c["warped_0"];
    for (int64_t k = 0; k < warped.size(1); ++k) {
      const float got = warped[0][k].item<float>();
      if (want[static_cast<std::size_t>(k)].is_null())
        EXPECT_TRUE(std::isinf(got) && got < 0) << k;
      else
        EXPECT_EQ(got, want[static_cast<std::size_t>(k)].get<float>()) << k;  // same ops, same order: bit-equal
    }
    // A generator of its own seeded with the row seed draws what transformers draws after torch.manual_seed.
    TokenSampler sampler(cfg, at::Device("cpu"), c["seed"].get<uint64_t>());
    std::vector<int64_t> tokens;
    for (const auto& logits : c["logits"]) tokens.push_back(sampler.next(row(logits)));
    EXPECT_EQ(tokens, c["tokens"].get<std::vector<int64_t>>()) << "seed " << c["seed"];
  }
}

TEST(GlmImageSampler, GenerateStopsAtEosAndTeacherForcingFeedsTheGivenTokens) {
  auto lm = load("ar_lm");
  c10::InferenceMode guard;
  const std::vector<int64_t> ids{64, 70, 71, 72, 65, 300, 301, 64};
  const ArPositions pos = glm_ar_positions(ids, 64, 65, {{1, 3}, {2, 2}});
  ArRequest req;
  req.input_ids = at::tensor(ids).view({1, -1});
  req.position_ids = at::tensor(pos.prefill).view({3, 1, -1});
  req.decode_positions = [&](int64_t k) { return at::tensor(pos.decode_column(k)).view({3, 1, 1}); };
  req.max_new_tokens = 4;
  SamplingConfig cfg;
  cfg.eos_token_ids = {65};
  std::vector<at::Tensor> seen;
  req.on_logits = [&](int64_t, const at::Tensor& l) { seen.push_back(l.clone()); };
  TokenSampler s1(cfg, at::Device("cpu"), 5);
  ArStats stats;
  const auto a = ar_generate(lm, req, s1, stats);
  EXPECT_EQ(a.size(), 4u);
  EXPECT_EQ(stats.decode_steps, 3);  // no decode after the last needed token
  EXPECT_EQ(stats.prefill_tokens, 8);
  ASSERT_EQ(seen.size(), 4u);
  // Teacher forcing: feeding other tokens changes the later logits, not the first.
  const std::vector<int64_t> teacher{(a[0] + 1) % 64, (a[1] + 1) % 64, (a[2] + 1) % 64};
  req.teacher = &teacher;
  std::vector<at::Tensor> forced;
  req.on_logits = [&](int64_t, const at::Tensor& l) { forced.push_back(l.clone()); };
  TokenSampler s2(cfg, at::Device("cpu"), 5);
  ArStats stats2;
  ar_generate(lm, req, s2, stats2);
  EXPECT_TRUE(at::equal(forced[0], seen[0]));
  EXPECT_FALSE(at::equal(forced[1], seen[1]));
  // A greedy sampler that meets the end token stops there and returns it.
  SamplingConfig greedy;
  greedy.do_sample = false;
  const at::Tensor l0 = seen[0];
  greedy.eos_token_ids = {l0.argmax(-1).item<int64_t>()};
  req.teacher = nullptr;
  req.on_logits = nullptr;
  TokenSampler s3(greedy, at::Device("cpu"), 0);
  ArStats stats3;
  EXPECT_EQ(ar_generate(lm, req, s3, stats3), std::vector<int64_t>{greedy.eos_token_ids[0]});
}

TEST(GlmImageBundle, EveryInputOfEveryMethodMatters) {
  const auto i64 = [](std::vector<int64_t> v, std::vector<int64_t> shape) { return at::tensor(v).view(shape); };
  {
    auto m = load("glyph_encoder");
    expect_every_input_matters(m, "forward",
                               {i64({10, 20, 30, 1, 0, 40, 50, 1}, {2, 4}), i64({1, 1, 1, 1, 1, 1, 1, 0}, {2, 4})},
                               {[](const c10::IValue& v) { return c10::IValue(v.toTensor() + 1); },
                                [](const c10::IValue& v) {
                                  at::Tensor t = v.toTensor().clone();
                                  t[0][3] = 0;
                                  return c10::IValue(t);
                                }});
  }
  {
    auto m = load("image_tokenizer");
    const GlmPatches p = glm_process_image(
        pattern(96, 64, 3), GlmProcessorConfig::from_json({{"min_pixels", 64 * 64}, {"max_pixels", 256 * 256}}));
    const int64_t P = p.patches();
    expect_every_input_matters(
        m, "forward", {at::tensor(p.pixel_values).view({P, -1}), i64(p.patch_pos, {P, 2}), i64(p.patch_grid, {P, 2})},
        {[](const c10::IValue& v) { return c10::IValue(v.toTensor().flip(0)); },
         [](const c10::IValue& v) { return c10::IValue(v.toTensor().flip(0)); },
         [](const c10::IValue& v) { return c10::IValue(v.toTensor() * 4); }});
  }
  {
    auto m = load("ar_lm");
    const std::vector<int64_t> ids{64, 70, 71, 72, 65, 300, 301, 64};
    const ArPositions pos = glm_ar_positions(ids, 64, 65, {{1, 3}, {2, 2}});
    const auto n = static_cast<int64_t>(ids.size());
    // Moves one token on one axis (a shift of every position would leave RoPE attention unchanged): the last token
    // of a prefill, the only one of a decode.
    const auto row_plus = [](int64_t axis) {
      return [axis](const c10::IValue& v) {
        at::Tensor t = v.toTensor().clone();
        t[axis][0][t.size(2) - 1] += 3;
        return c10::IValue(t);
      };
    };
    // Each position axis on its own moves the logits: all three mRoPE rows are in use.
    for (int64_t axis = 0; axis < 3; ++axis)
      expect_every_input_matters(
          m, "prefill", {i64(ids, {1, n}), i64(pos.prefill, {3, 1, n})},
          {[](const c10::IValue& v) { return c10::IValue(v.toTensor().flip(1)); }, row_plus(axis)});
    c10::InferenceMode guard;
    const auto pre = m.get_method("prefill")({i64(ids, {1, n}), i64(pos.prefill, {3, 1, n})}).toTuple();
    const at::Tensor k = pre->elements()[1].toTensor(), v = pre->elements()[2].toTensor();
    EXPECT_EQ(k.sizes(), (std::vector<int64_t>{2, 1, 1, n, 16}));
    const auto dec = m.get_method("decode")({i64({5}, {1, 1}), i64(pos.decode_column(0), {3, 1, 1}), k, v}).toTuple();
    EXPECT_EQ(dec->elements()[1].toTensor().size(3), n + 1);  // decode appends to the cache
    for (int64_t axis = 0; axis < 3; ++axis)
      expect_every_input_matters(
          m, "decode", {i64({5}, {1, 1}), i64(pos.decode_column(0), {3, 1, 1}), k, v},
          {[](const c10::IValue& x) { return c10::IValue(x.toTensor() + 1); }, row_plus(axis),
           [](const c10::IValue& x) { return plus(x, 0.5); }, [](const c10::IValue& x) { return plus(x, 0.5); }});
  }
  {
    auto m = load("transformer");
    std::vector<float> cos, sin;
    glm_dit_rope(4, 6, 16, cos, sin);
    const at::Tensor c = at::tensor(cos).view({24, 16}), s = at::tensor(sin).view({24, 16});
    const at::Tensor z = at::randn({1, 16, 8, 12}, at::TensorOptions().dtype(at::kFloat));
    const at::Tensor ids = at::arange(24).remainder(64).view({1, 24});
    const at::Tensor size = at::tensor(std::vector<float>{64, 96}).view({1, 2});
    expect_every_input_matters(m, "write_kv", {z, ids, size, c, s},
                               {[](const c10::IValue& x) { return plus(x, 0.5); },
                                [](const c10::IValue& x) { return c10::IValue(x.toTensor().flip(1)); },
                                [](const c10::IValue& x) { return plus(x, 32); },
                                [](const c10::IValue& x) { return c10::IValue(x.toTensor().flip(0)); },
                                [](const c10::IValue& x) { return c10::IValue(x.toTensor().flip(0)); }});
    c10::InferenceMode guard;
    const auto kv = m.get_method("write_kv")({z, ids, size, c, s}).toTuple();
    const at::Tensor kk = kv->elements()[0].toTensor(), vv = kv->elements()[1].toTensor();
    EXPECT_EQ(kk.sizes(), (std::vector<int64_t>{2, 1, 24, 2, 16}));
    const at::Tensor glyph = at::randn({1, 5, 32});
    const at::Tensor drop = at::zeros({1, 24}, at::kBool);
    expect_every_input_matters(
        m, "forward", {z, glyph, ids, drop, at::full({1}, 500.0f), size, at::zeros({1, 2}), c, s, kk, vv},
        {[](const c10::IValue& x) { return plus(x, 0.5); }, [](const c10::IValue& x) { return plus(x, 0.5); },
         [](const c10::IValue& x) { return c10::IValue(x.toTensor().flip(1)); },
         [](const c10::IValue& x) { return c10::IValue(x.toTensor().logical_not()); },
         [](const c10::IValue& x) { return plus(x, 100); }, [](const c10::IValue& x) { return plus(x, 32); },
         [](const c10::IValue& x) { return plus(x, 16); },
         [](const c10::IValue& x) { return c10::IValue(x.toTensor().flip(0)); },
         [](const c10::IValue& x) { return c10::IValue(x.toTensor().flip(0)); },
         [](const c10::IValue& x) { return plus(x, 0.5); }, [](const c10::IValue& x) { return plus(x, 0.5); }});
  }
}

TEST(GlmImage, SizesReferencesCfgAndSensitivity) {
  Runner glm("glm_image", "float32");
  const Image a = pattern(150, 100, 1), b = pattern(64, 64, 2);
  const EditResult base = glm.run({a}, "write 'OPEN' on it", 1, 2, 1.5);
  // Snapped to multiples of 32 within the tiny processor's [64, 256]: 150x100 -> 160x96.
  EXPECT_EQ(base.image.width, 160);
  EXPECT_EQ(base.image.height, 96);
  EXPECT_EQ(counter(base, "ar_tokens"), 15);  // the target grid (96/32) x (160/32), no EOS step
  EXPECT_EQ(counter(base, "transformer_calls"), 4);
  EXPECT_EQ(counter(glm.run({a}, "write 'OPEN' on it", 1, 2, 1.0), "transformer_calls"), 2);
  EXPECT_EQ(glm.run({a}, "write 'OPEN' on it", 1, 2, 1.5).image.rgb, base.image.rgb);
  EXPECT_NE(glm.run({a}, "write 'OPEN' on it", 2, 2, 1.5).image.rgb, base.image.rgb);
  EXPECT_NE(glm.run({a}, "write 'SHUT' on it", 1, 2, 1.5).image.rgb, base.image.rgb);
  EXPECT_NE(glm.run({a}, "write 'OPEN' on it", 1, 2, 3.0).image.rgb, base.image.rgb);
  // The negative prompt has no upstream meaning: ignored.
  EXPECT_EQ(glm.run({a}, "write 'OPEN' on it", 1, 2, 1.5, std::nullopt, "blurry").image.rgb, base.image.rgb);
  Image a2 = a;
  a2.pixel(70, 40)[1] ^= 0xff;
  EXPECT_NE(glm.run({a2}, "write 'OPEN' on it", 1, 2, 1.5).image.rgb, base.image.rgb);
  // A second reference is read; the first one sets the size.
  const EditResult two = glm.run({a, b}, "write 'OPEN' on it", 1, 2, 1.5);
  EXPECT_EQ(two.image.width, 160);
  EXPECT_NE(two.image.rgb, base.image.rgb);
  EXPECT_EQ(glm.run({b, a}, "x", 1, 2, 1.5).image.width, 64);
  // bfloat16 runs too.
  Runner bf("glm_image", "bfloat16");
  EXPECT_EQ(bf.run({a}, "x", 3, 2).image.width, 160);
}

// The row's progress: the prior's tokens one by one ("ar"), then the denoising steps.
TEST(GlmImage, ProgressReportsThePriorThenTheDenoisingSteps) {
  Runner glm("glm_image", "float32");
  EditRequest r;
  r.images = {pattern(150, 100, 1)};
  r.instruction = "x";
  r.seed = 1;
  r.params = merge_params(*glm.spec, {2, 1.5, std::nullopt, std::nullopt});
  std::vector<std::tuple<std::string, int, int>> seen;
  r.on_step = [&](const std::string& phase, int step, int steps) { seen.emplace_back(phase, step, steps); };
  glm.pipe->edit(r);
  ASSERT_EQ(seen.size(), 15u + 2u);  // the 3 x 5 target grid's tokens, then 2 steps
  for (int k = 0; k < 15; ++k) {
    EXPECT_EQ(std::get<0>(seen[k]), "ar");
    EXPECT_EQ(std::get<1>(seen[k]), k + 1);
    EXPECT_GE(std::get<2>(seen[k]), 15);  // the token budget
  }
  EXPECT_EQ(seen[15], std::make_tuple(std::string("denoise"), 1, 2));
  EXPECT_EQ(seen[16], std::make_tuple(std::string("denoise"), 2, 2));
}

TEST(GlmImage, TimestepModeIsAModelOption) {
  const ModelSpec* spec = find_model("glm_image");
  auto make = [&](std::map<std::string, std::string> options) {
    return find_model_entry("glm_image")
        ->make_pipeline(PipelineConfig{spec, tiny_bundle("glm_image"), "cpu", "float32", std::move(options), {}, {}});
  };
  EditRequest r;
  r.images = {pattern(96, 64, 4)};
  r.instruction = "x";
  r.seed = 9;
  r.params = merge_params(*spec, {2, 1.5, std::nullopt, std::nullopt});
  const Image unshifted = make({})->edit(r).image;
  EXPECT_EQ(make({{"timesteps", "unshifted"}})->edit(r).image.rgb, unshifted.rgb);
  EXPECT_NE(make({{"timesteps", "shifted"}})->edit(r).image.rgb, unshifted.rgb);
  EXPECT_THROW(make({{"timesteps", "sideways"}}), std::exception);
}

TEST(GlmImage, AnIncompleteOrInvalidPriorFailsTheRow) {
  const Image a = pattern(96, 64, 1);
  auto error_of = [&](const std::string& bundle) {
    Runner r("glm_image", "float32", bundle);
    try {
      r.run({a}, "x", 1, 2);
    } catch (const InputError& e) {
      return std::string("input error: ") + e.what();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string eos = error_of(bundle_favouring(65, "eos"));
  EXPECT_NE(eos.find("sampled token 65 (end of image) at code 1 of 6"), std::string::npos) << eos;
  const std::string spare = error_of(bundle_favouring(70, "spare"));
  EXPECT_NE(spare.find("sampled token 70 (not a codebook code)"), std::string::npos) << spare;
  // Aspect ratios above 4 are the table's rule: refused before the model.
  Runner r("glm_image", "float32");
  EXPECT_THROW(r.run({pattern(400, 90, 1)}, "x", 1, 2), InputError);
}
