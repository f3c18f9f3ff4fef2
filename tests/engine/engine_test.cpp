// The libtorch engine in one process (each libtorch process costs ~0.5 s to start): tiny bundles
// made by make-tiny, the Qwen pipelines end to end, tensor helpers, component sensitivity, and
// bundle validation errors.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <torch/script.h>

#include <filesystem>
#include <optional>
#include <fstream>

#include "diffgentor/bundle.hpp"
#include "diffgentor/latents.hpp"
#include "diffgentor/model_registry.hpp"
#include "diffgentor/resize.hpp"
#include "diffgentor/scheduler.hpp"
#include "diffgentor/tokenizer.hpp"
#include <nlohmann/json.hpp>
#include "process.hpp"

namespace fs = std::filesystem;
using namespace dg;

namespace {

// Two tiny bundles shared by every test of this binary.
struct Bundles {
  dg::test::TempDir dir;
  std::string qwen, single, flux2, klein, klein_base;
  Bundles() {
    qwen = dir / "qwen";
    single = dir / "single";
    flux2 = dir / "flux2";
    klein = dir / "klein";
    klein_base = dir / "klein_base";
    find_model_entry("qwen")->make_tiny(*find_model("qwen"), qwen, {"tiny", 0});
    find_model_entry("qwen_singleimg")->make_tiny(*find_model("qwen_singleimg"), single, {"tiny", 0});
    find_model_entry("flux2")->make_tiny(*find_model("flux2"), flux2, {"tiny", 0});
    find_model_entry("flux2_klein")->make_tiny(*find_model("flux2_klein"), klein, {"tiny", 0});
    // The base (undistilled) klein: the same bundle with is_distilled false in model_index.json.
    fs::copy(klein, klein_base, fs::copy_options::recursive);
    nlohmann::json index = nlohmann::json::parse(std::ifstream(klein_base + "/model_index.json"));
    index["is_distilled"] = false;
    std::ofstream(klein_base + "/model_index.json") << index.dump();
  }
};
Bundles& bundles() {
  static Bundles b;
  return b;
}

Image pattern(int w, int h, int seed) {
  Image img{w, h, std::vector<uint8_t>(static_cast<std::size_t>(w) * h * 3)};
  for (std::size_t k = 0; k < img.rgb.size(); ++k) img.rgb[k] = static_cast<uint8_t>((k * 13 + seed * 71 + k / 97) % 256);
  return img;
}

struct Runner {
  EditOptions options;
  std::unique_ptr<Pipeline> pipe;
  Runner(const std::string& bundle, const std::string& type, const std::string& dtype = "bfloat16") {
    options.torch_dtype = dtype;
    pipe = find_model_entry(type)->make_pipeline(PipelineConfig{find_model(type), bundle, "cpu", &options});
  }
  EditResult run(std::vector<Image> images, const std::string& text, uint64_t seed, double true_cfg = 4.0,
                 int steps = 2, double guidance = 1.0) {
    EditRequest r;
    r.images = std::move(images);
    r.instruction = text;
    r.seed = seed;
    r.params.steps = steps;
    r.params.guidance = guidance;
    r.params.true_cfg = true_cfg;
    r.params.negative_prompt = " ";
    return pipe->edit(r);
  }
};

int64_t counter(const EditResult& r, const std::string& name) {
  for (const auto& [k, v] : r.counters)
    if (k == name) return v;
  return -1;
}

}  // namespace

TEST(Latents, PackUnpackRoundTripAndTokenOrder) {
  const at::Tensor x = at::arange(2 * 3 * 4 * 6, at::kFloat).view({2, 3, 4, 6});
  const at::Tensor p = pack_latents(x);
  ASSERT_EQ(p.sizes(), (std::vector<int64_t>{2, 6, 12}));
  // token (0, 0) holds c*4 + dy*2 + dx = x[c, dy, dx]
  EXPECT_EQ(p[0][0][4 * 1 + 2 * 1 + 0].item<float>(), x[0][1][1][0].item<float>());
  EXPECT_EQ(p[0][1][0].item<float>(), x[0][0][0][2].item<float>());  // row-major tokens
  EXPECT_TRUE(at::equal(unpack_latents(p, 4, 6, 3), x));
}

TEST(Latents, SeededNoiseMatchesPyTorchAndIsDrawnInItsDtype) {
  // torch.manual_seed(0); torch.randn(4) in Python gives 1.5410, -0.2934, -2.1788, 0.5684.
  const at::Tensor n = seeded_noise({4}, 0, at::kFloat, "cpu");
  const float want[] = {1.5410f, -0.2934f, -2.1788f, 0.5684f};
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(n[k].item<float>(), want[k], 1e-4);
  EXPECT_TRUE(at::equal(seeded_noise({2, 3}, 7, at::kBFloat16, "cpu"), seeded_noise({6}, 7, at::kBFloat16, "cpu").view({2, 3})));
  EXPECT_FALSE(at::equal(seeded_noise({64}, 7, at::kBFloat16, "cpu"), seeded_noise({64}, 7, at::kFloat, "cpu").to(at::kBFloat16)));
}

TEST(Latents, EulerStepRoundsLikePyTorchBf16) {
  // pipelines.md §1.1: x_next = bf16(f32(x) + f32(bf16(bf16(dt) * v))) for bf16 v.
  const at::Tensor x = at::randn({4096}, at::kFloat).to(at::kBFloat16);
  const at::Tensor v = at::randn({4096}, at::kFloat).to(at::kBFloat16);
  const float s0 = 0.91372549f, s1 = 0.87254903f;
  const float dt = bf16_round(s1 - s0);
  const at::Tensor prod = (v.to(at::kFloat) * dt).to(at::kBFloat16).to(at::kFloat);
  const at::Tensor want = (x.to(at::kFloat) + prod).to(at::kBFloat16);
  EXPECT_TRUE(at::equal(euler_step(x, v, s0, s1), want));
}

TEST(Latents, ImageRoundTripThroughMinusOneOne) {
  const Image img = pattern(5, 3, 1);
  EXPECT_EQ(tensor_to_image(image_to_tensor(img, at::kFloat, "cpu")).rgb, img.rgb);
}

TEST(QwenPipeline, OutputSizesFollowTheReferenceRules) {
  Runner plus(bundles().qwen, "qwen");
  // Plus: output from the LAST image at 1024^2 area (multiples of 32).
  EditResult r = plus.run({pattern(96, 64, 1), pattern(40, 80, 2)}, "merge them", 1);
  const auto [w2, h2] = calculate_dimensions(1024.0 * 1024, 40.0 / 80);
  EXPECT_EQ(r.image.width, w2);
  EXPECT_EQ(r.image.height, h2);
  EXPECT_EQ(r.image.width, 736);
  EXPECT_EQ(r.image.height, 1440);
  r = plus.run({pattern(96, 64, 1)}, "one image", 1);
  EXPECT_EQ(r.image.width, 1248);
  EXPECT_EQ(r.image.height, 832);
  Runner single(bundles().single, "qwen_singleimg");
  r = single.run({pattern(64, 64, 3)}, "square", 1);
  EXPECT_EQ(r.image.width, 1024);
  EXPECT_EQ(r.image.height, 1024);
  EXPECT_THROW(single.run({pattern(64, 64, 3), pattern(64, 64, 4)}, "two", 1), std::invalid_argument);
}

TEST(QwenPipeline, DeterministicAndSensitiveToEveryInput) {
  Runner plus(bundles().qwen, "qwen");
  const Image a = pattern(64, 48, 1), b = pattern(48, 48, 2);
  const auto base = plus.run({a, b}, "make it blue", 5).image.rgb;
  EXPECT_EQ(plus.run({a, b}, "make it blue", 5).image.rgb, base);  // bit-identical
  EXPECT_NE(plus.run({a, b}, "make it blue", 6).image.rgb, base);  // seed
  EXPECT_NE(plus.run({a, b}, "make it red", 5).image.rgb, base);   // instruction
  Image a2 = a;
  for (int y = 10; y < 20; ++y) a2.pixel(10, y)[0] ^= 0x80;  // a changed reference image
  EXPECT_NE(plus.run({a2, b}, "make it blue", 5).image.rgb, base);
  Image b2 = b;
  b2.pixel(3, 3)[2] ^= 0xff;
  EXPECT_NE(plus.run({a, b2}, "make it blue", 5).image.rgb, base);
  // Removing the first reference keeps the output size (from the last image) but changes the output.
  const auto removed = plus.run({b}, "make it blue", 5);
  EXPECT_NE(removed.image.rgb, base);
}

TEST(QwenPipeline, TrueCfgDoublesTransformerCallsAndChangesTheOutput) {
  Runner plus(bundles().qwen, "qwen");
  const Image a = pattern(64, 48, 1);
  const EditResult on = plus.run({a}, "x", 3, 4.0, 3);
  const EditResult off = plus.run({a}, "x", 3, 1.0, 3);
  EXPECT_EQ(counter(on, "transformer_calls"), 6);
  EXPECT_EQ(counter(off, "transformer_calls"), 3);
  EXPECT_NE(on.image.rgb, off.image.rgb);
  const EditResult other_scale = plus.run({a}, "x", 3, 2.0, 3);
  EXPECT_NE(other_scale.image.rgb, on.image.rgb);
}

TEST(QwenPipeline, Float32RunsToo) {
  Runner plus(bundles().qwen, "qwen", "float32");
  const EditResult r = plus.run({pattern(32, 32, 1)}, "x", 1, 4.0, 1);
  EXPECT_EQ(r.image.width, 1024);
}

TEST(TinyComponents, ReactToEveryInput) {
  c10::InferenceMode guard;
  Bundle b = Bundle::open(bundles().qwen, *find_model("qwen"), "float32", "cpu");
  auto changed = [](const at::Tensor& x, const at::Tensor& y) { return !at::allclose(x, y, 1e-6, 1e-7); };
  // Transformer: hidden states, text, timestep, both RoPE tables, modulate_index (zero_cond_t).
  torch::jit::Module dit = b.load("transformer", "cpu");
  const int64_t S = 8, L = 5;
  std::vector<at::Tensor> in{at::randn({1, S, 64}), at::randn({1, L, 32}), at::full({1}, 0.5f), at::randn({S, 8, 2}),
                             at::randn({L, 8, 2}), at::zeros({1, S}, at::kLong)};
  in[5][0][S - 1] = 1;
  auto run_dit = [&](std::vector<at::Tensor> args) {
    return dit.forward(std::vector<c10::IValue>(args.begin(), args.end())).toTensor();
  };
  const at::Tensor base = run_dit(in);
  for (std::size_t k = 0; k < in.size(); ++k) {
    auto args = in;
    args[k] = args[k].clone();
    if (k == 5) args[k][0][S - 1] = 0;
    else if (k == 2) args[k] = at::full({1}, 0.25f);
    else args[k].view({-1})[0] += 1.0;
    EXPECT_TRUE(changed(run_dit(args), base)) << "transformer input " << k;
  }
  // Text encoder: ids, mask, each mRoPE axis, image embeddings.
  torch::jit::Module te = b.load("text_encoder", "cpu");
  const int32_t pad = te.attr("image_token_id").toInt();
  at::Tensor ids = at::tensor(std::vector<int64_t>{1, 2, pad, pad, 3, 4}).view({1, 6});
  std::vector<at::Tensor> tin{ids, at::ones({1, 6}, at::kLong), at::arange(6).view({1, 1, 6}).repeat({3, 1, 1}),
                              at::randn({2, 32})};
  auto run_te = [&](std::vector<at::Tensor> args) {
    return te.forward(std::vector<c10::IValue>(args.begin(), args.end())).toTensor();
  };
  const at::Tensor tbase = run_te(tin);
  for (int k = 0; k < 4; ++k) {
    auto args = tin;
    args[k] = args[k].clone();
    if (k == 0) args[0][0][1] = 5;
    if (k == 1) args[1][0][1] = 0;
    if (k == 3) args[3][1][0] += 1.0;
    if (k == 2) {
      for (int axis = 0; axis < 3; ++axis) {
        auto pos = tin;
        pos[2] = tin[2].clone();
        pos[2][axis][0][3] += 2;
        EXPECT_TRUE(changed(run_te(pos), tbase)) << "mRoPE axis " << axis;
      }
      continue;
    }
    EXPECT_TRUE(changed(run_te(args), tbase)) << "text encoder input " << k;
  }
  // Vision encoder: pixels, positions, both segment inputs.
  torch::jit::Module ve = b.load("vision_encoder", "cpu");
  std::vector<at::Tensor> vin{at::randn({8, 1176}), at::tensor(std::vector<int64_t>{0, 0, 0, 1, 1, 0, 1, 1, 0, 2, 0, 3, 1, 2, 1, 3}).view({8, 2}),
                              at::tensor(std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1}), at::zeros({8}, at::kLong)};
  auto run_ve = [&](std::vector<at::Tensor> args) {
    return ve.forward(std::vector<c10::IValue>(args.begin(), args.end())).toTensor();
  };
  const at::Tensor vbase = run_ve(vin);
  EXPECT_EQ(vbase.sizes(), (std::vector<int64_t>{2, 32}));
  for (int k = 0; k < 4; ++k) {
    auto args = vin;
    args[k] = args[k].clone();
    if (k == 0) args[0][5][7] += 1.0;
    if (k == 1) args[1][1][1] = 5;
    if (k == 2) args[2] = at::zeros({8}, at::kLong);
    if (k == 3) args[3] = at::tensor(std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1});
    EXPECT_TRUE(changed(run_ve(args), vbase)) << "vision encoder input " << k;
  }
}

TEST(Bundle, LoadErrorsNameWhatIsWrong) {
  dg::test::TempDir d;
  auto copy = [&](const std::string& name) {
    const std::string dst = d / name;
    fs::copy(bundles().qwen, dst, fs::copy_options::recursive);
    return dst;
  };
  auto error_of = [&](const std::string& dir, const std::string& dtype = "bfloat16") -> std::string {
    try {
      EditOptions o;
      o.torch_dtype = dtype;
      find_model_entry("qwen")->make_pipeline(PipelineConfig{find_model("qwen"), dir, "cpu", &o});
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  const std::string missing = copy("missing");
  fs::remove(missing + "/torchscript/transformer.pt");
  EXPECT_NE(error_of(missing).find("component 'transformer': file torchscript/transformer.pt does not exist"),
            std::string::npos) << error_of(missing);

  auto edit_manifest = [&](const std::string& dir, const std::function<void(nlohmann::json&)>& change) {
    nlohmann::json m = nlohmann::json::parse(std::ifstream(dir + "/torchscript/manifest.json"));
    change(m);
    std::ofstream(dir + "/torchscript/manifest.json") << m.dump();
  };
  const std::string version = copy("version");
  edit_manifest(version, [](nlohmann::json& m) { m["format_version"] = 99; });
  EXPECT_NE(error_of(version).find("format_version 99 is not supported"), std::string::npos);
  const std::string type = copy("type");
  edit_manifest(type, [](nlohmann::json& m) { m["model_type"] = "flux2"; });
  EXPECT_NE(error_of(type).find("model_type is 'flux2' but the run asks for 'qwen'"), std::string::npos);
  const std::string dtype = copy("dtype");
  edit_manifest(dtype, [](nlohmann::json& m) { m["dtype_convertible"] = false; });
  EXPECT_NE(error_of(dtype).find("exported in float32, but --torch_dtype is bfloat16"), std::string::npos);
  EXPECT_EQ(error_of(dtype, "float32"), "");
  const std::string newer = copy("newer");
  edit_manifest(newer, [](nlohmann::json& m) { m["producer"]["torch"] = "99.0.0"; });
  EXPECT_NE(error_of(newer).find("newer than this runtime's libtorch"), std::string::npos);
  const std::string ops = copy("ops");
  edit_manifest(ops, [](nlohmann::json& m) {
    m["components"]["text_encoder"]["required_ops"] = {"aten::matmul", "aten::softmax", "aten::no_such_op_xyz"};
  });
  const std::string op_error = error_of(ops);
  EXPECT_NE(op_error.find("component text_encoder needs operators this libtorch"), std::string::npos) << op_error;
  EXPECT_NE(op_error.find("lacks: aten::no_such_op_xyz;"), std::string::npos) << op_error;
  edit_manifest(ops, [](nlohmann::json& m) { m["components"]["text_encoder"]["required_ops"] = {"aten::matmul", "prim::device"}; });
  EXPECT_EQ(error_of(ops), "");
  const std::string noconfig = copy("noconfig");
  fs::remove(noconfig + "/vae/config.json");
  EXPECT_NE(error_of(noconfig).find("missing file"), std::string::npos);
  EXPECT_NE(error_of(noconfig).find("vae/config.json"), std::string::npos);

  const std::string signature = copy("signature");
  torch::jit::Module wrong("Wrong");
  wrong.define("def forward(self, x: Tensor, t: Tensor) -> Tensor:\n    return x + t\n");
  wrong.save(signature + "/torchscript/transformer.pt");
  const std::string sig = error_of(signature);
  EXPECT_NE(sig.find("component transformer"), std::string::npos) << sig;
  EXPECT_NE(sig.find("wrong signature: forward(x, t)"), std::string::npos) << sig;
}

TEST(ModelRegistry, ImplementedTypesHaveAPipelineAndATinyBundle) {
  for (const char* type : {"qwen", "qwen_singleimg", "flux2", "flux2_klein", "longcat", "flux1_kontext"}) {
    const ModelEntry* e = find_model_entry(type);
    ASSERT_NE(e, nullptr) << type;
    EXPECT_TRUE(e->make_pipeline && e->make_tiny);
  }
}

TEST(Flux2, ReferencePreparationAndIds) {
  EXPECT_THROW(flux2_reference(pattern(63, 100, 1)), std::invalid_argument);
  EXPECT_THROW(flux2_reference(pattern(900, 100, 1)), std::invalid_argument);  // aspect 9
  const Image small = flux2_reference(pattern(70, 75, 1));  // centre crop to 64x64, no resampling
  ASSERT_EQ(small.width, 64);
  ASSERT_EQ(small.height, 64);
  const Image src = pattern(70, 75, 1);
  EXPECT_EQ(small.pixel(0, 0)[0], src.pixel(3, 5)[0]);
  EXPECT_EQ(small.pixel(63, 63)[2], src.pixel(66, 68)[2]);
  const Image big = flux2_reference(pattern(1500, 1000, 2));  // capped to 1024^2 area: int(1254.1) x int(836.1)
  EXPECT_EQ(big.width, 1248);
  EXPECT_EQ(big.height, 832);
  EXPECT_EQ(flux2_image_ids(20, 2, 3), (std::vector<int64_t>{20, 0, 0, 0, 20, 0, 1, 0, 20, 0, 2, 0,
                                                              20, 1, 0, 0, 20, 1, 1, 0, 20, 1, 2, 0}));
}

TEST(Flux2, PatchifyAndBatchNormRoundTrip) {
  const at::Tensor z = at::randn({1, 32, 6, 4});
  const at::Tensor p = patchify_2x2(z);
  ASSERT_EQ(p.sizes(), (std::vector<int64_t>{1, 128, 3, 2}));
  EXPECT_EQ(p[0][5 * 4 + 1 * 2 + 1][2][1].item<float>(), z[0][5][5][3].item<float>());  // c*4 + dy*2 + dx
  const at::Tensor mean = at::randn({1, 128, 1, 1}), stdv = at::rand({1, 128, 1, 1}) + 0.5;
  const at::Tensor tokens = to_tokens((p - mean) / stdv);
  ASSERT_EQ(tokens.sizes(), (std::vector<int64_t>{1, 6, 128}));
  EXPECT_TRUE(at::allclose(unpatchify_2x2(from_tokens(tokens, 3, 2) * stdv + mean), z, 1e-5, 1e-6));
}

TEST(Flux2, SizesCallsAndSensitivity) {
  Runner dev(bundles().flux2, "flux2");
  const Image a = pattern(96, 64, 1), b = pattern(80, 80, 2);
  EditResult r = dev.run({a, b}, "add a moon", 3, 1.0, 2, 4.0);
  EXPECT_EQ(r.image.width, 96);  // the first reference's processed size
  EXPECT_EQ(r.image.height, 64);
  EXPECT_EQ(counter(r, "transformer_calls"), 2);  // distilled guidance: one call per step
  const auto base = r.image.rgb;
  EXPECT_EQ(dev.run({a, b}, "add a moon", 3, 1.0, 2, 4.0).image.rgb, base);
  EXPECT_NE(dev.run({a, b}, "add a moon", 4, 1.0, 2, 4.0).image.rgb, base);
  EXPECT_NE(dev.run({a, b}, "add a sun", 3, 1.0, 2, 4.0).image.rgb, base);
  EXPECT_NE(dev.run({a, b}, "add a moon", 3, 1.0, 2, 2.5).image.rgb, base);  // guidance embedding
  Image b2 = b;
  b2.pixel(40, 40)[1] ^= 0xff;
  EXPECT_NE(dev.run({a, b2}, "add a moon", 3, 1.0, 2, 4.0).image.rgb, base);  // the second reference
  EXPECT_NE(dev.run({a}, "add a moon", 3, 1.0, 2, 4.0).image.rgb, base);
  EXPECT_THROW(dev.run({pattern(40, 40, 1)}, "tiny input", 3), std::invalid_argument);

  Runner distilled(bundles().klein, "flux2_klein");
  EXPECT_EQ(counter(distilled.run({a}, "x", 1, 1.0, 3, 4.0), "transformer_calls"), 3);  // no CFG when distilled
  const auto klein_base = distilled.run({a, b}, "add a moon", 3, 1.0, 2, 1.0).image.rgb;  // multi-image row
  EXPECT_EQ(distilled.run({a, b}, "add a moon", 3, 1.0, 2, 1.0).image.rgb, klein_base);
  EXPECT_NE(distilled.run({a, b}, "add a sun", 3, 1.0, 2, 1.0).image.rgb, klein_base);
  EXPECT_NE(distilled.run({a, b2}, "add a moon", 3, 1.0, 2, 1.0).image.rgb, klein_base);
  EXPECT_NE(distilled.run({a, b}, "add a moon", 4, 1.0, 2, 1.0).image.rgb, klein_base);
  Runner undistilled(bundles().klein_base, "flux2_klein");
  const EditResult with_cfg = undistilled.run({a}, "x", 1, 1.0, 3, 4.0);
  EXPECT_EQ(counter(with_cfg, "transformer_calls"), 6);  // plain CFG against ""
  const EditResult without = undistilled.run({a}, "x", 1, 1.0, 3, 1.0);
  EXPECT_EQ(counter(without, "transformer_calls"), 3);
  EXPECT_NE(with_cfg.image.rgb, without.image.rgb);
}

TEST(Flux2, MistralTemplateTokensComeFromTheBundle) {
  const Tokenizer tok = Tokenizer::from_file(bundles().flux2 + "/tokenizer/tokenizer.json");
  const auto ids = tok.encode("<s>[SYSTEM_PROMPT]hi[/SYSTEM_PROMPT][INST]a cat[/INST]");
  ASSERT_GE(ids.size(), 6u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids[1], 17);
  EXPECT_EQ(ids.back(), 4);
  EXPECT_EQ(*tok.token_to_id("<pad>"), 11);
}

TEST(TinyComponents, Flux2TransformerReactsToIdsAndGuidance) {
  c10::InferenceMode guard;
  Bundle b = Bundle::open(bundles().flux2, *find_model("flux2"), "float32", "cpu");
  torch::jit::Module dit = b.load("transformer", "cpu");
  const int64_t S = 6, L = 4;
  std::vector<at::Tensor> in{at::randn({1, S, 128}), at::randn({1, L, 96}), at::full({1}, 0.5f), at::full({1}, 4.0f),
                             at::zeros({S, 4}, at::kLong), at::zeros({L, 4}, at::kLong)};
  for (int64_t s = 0; s < S; ++s) in[4][s][1] = s / 3, in[4][s][2] = s % 3;
  for (int64_t l = 0; l < L; ++l) in[5][l][3] = l;
  auto run = [&](const std::vector<at::Tensor>& args) {
    return dit.forward(std::vector<c10::IValue>(args.begin(), args.end())).toTensor();
  };
  const at::Tensor base = run(in);
  for (int k : {2, 3, 4, 5}) {
    auto args = in;
    args[k] = args[k].clone();
    if (k == 2) args[k] = at::full({1}, 0.25f);
    if (k == 3) args[k] = at::full({1}, 2.0f);
    if (k == 4) args[k][S - 1][0] = 10;  // one token moves to reference frame T = 10
    if (k == 5) args[k][1][3] = 7;
    EXPECT_FALSE(at::allclose(run(args), base, 1e-6, 1e-7)) << "input " << k;
  }
}

TEST(LongCat, QuoteSplittingAsUpstream) {
  // The example in upstream's split_quotation docstring.
  const auto parts = longcat_split_quotation("Please write 'Hello' on the blackboard for me.");
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0], std::make_pair(std::string("Please write "), false));
  EXPECT_EQ(parts[1], std::make_pair(std::string("'Hello'"), true));
  EXPECT_EQ(parts[2], std::make_pair(std::string(" on the blackboard for me."), false));
  // Word-internal apostrophes are not quotes; curly and double quotes are.
  const auto more = longcat_split_quotation("don't erase \"OPEN\" or \u201c\u4f60\u597d\u201d, it's fine");
  ASSERT_EQ(more.size(), 5u);
  EXPECT_EQ(more[0], std::make_pair(std::string("don't erase "), false));
  EXPECT_EQ(more[1], std::make_pair(std::string("\"OPEN\""), true));
  EXPECT_EQ(more[3], std::make_pair(std::string("\u201c\u4f60\u597d\u201d"), true));
  EXPECT_EQ(more[4], std::make_pair(std::string(", it's fine"), false));
  EXPECT_EQ(longcat_split_quotation("an 'unclosed quote").size(), 1u);
  // Quoted spans are tokenised one character at a time.
  const Tokenizer tok = Tokenizer::from_file(bundles().qwen + "/tokenizer/tokenizer.json");
  std::vector<int32_t> want = tok.encode("write ");
  for (const char* c : {"'", "H", "i", "'"}) {
    const auto t = tok.encode(c);
    want.insert(want.end(), t.begin(), t.end());
  }
  EXPECT_EQ(longcat_prompt_tokens(tok, "write 'Hi'"), want);
  EXPECT_EQ(longcat_dimensions(1024.0 * 1024, 1.5), std::make_pair(1264, 848));
  EXPECT_EQ(longcat_dimensions(1024.0 * 1024, 1.0), std::make_pair(1024, 1024));
}

TEST(LongCat, SizesCfgAndSensitivity) {
  static Bundles& b = bundles();
  const std::string dir = b.dir / "longcat";
  if (!fs::exists(dir)) find_model_entry("longcat")->make_tiny(*find_model("longcat"), dir, {"tiny", 0});
  Runner lc(dir, "longcat");
  const Image a = pattern(96, 64, 1);
  auto run = [&](const Image& img, const std::string& text, uint64_t seed, double guidance, const std::string& neg = "") {
    EditRequest r;
    r.images = {img};
    r.instruction = text;
    r.seed = seed;
    r.params.steps = 2;
    r.params.guidance = guidance;
    r.params.negative_prompt = neg;
    return lc.pipe->edit(r);
  };
  const EditResult base = run(a, "write 'OPEN' on the sign", 1, 4.5);
  EXPECT_EQ(base.image.width, 1264);  // calculate_dimensions rounded up to 16, from the input
  EXPECT_EQ(base.image.height, 848);
  EXPECT_EQ(counter(base, "transformer_calls"), 4);  // plain CFG: two calls per step
  EXPECT_EQ(counter(run(a, "write 'OPEN' on the sign", 1, 1.0), "transformer_calls"), 2);
  EXPECT_EQ(run(a, "write 'OPEN' on the sign", 1, 4.5).image.rgb, base.image.rgb);
  EXPECT_NE(run(a, "write 'OPEN' on the sign", 2, 4.5).image.rgb, base.image.rgb);
  EXPECT_NE(run(a, "write 'CLOSED' on the sign", 1, 4.5).image.rgb, base.image.rgb);
  EXPECT_NE(run(a, "write 'OPEN' on the sign", 1, 4.5, "blurry").image.rgb, base.image.rgb);
  Image a2 = a;
  a2.pixel(50, 30)[0] ^= 0xff;
  EXPECT_NE(run(a2, "write 'OPEN' on the sign", 1, 4.5).image.rgb, base.image.rgb);
  EditRequest two;
  two.images = {a, a};
  two.instruction = "x";
  two.params.steps = 1;
  EXPECT_THROW(lc.pipe->edit(two), std::invalid_argument);
}

TEST(Kontext, PreferredResolutionsAndOutputSizeRule) {
  EXPECT_EQ(kontext_preferred_resolution(96, 64), std::make_pair(1248, 832));
  EXPECT_EQ(kontext_preferred_resolution(64, 64), std::make_pair(1024, 1024));
  EXPECT_EQ(kontext_preferred_resolution(1000, 750), std::make_pair(1184, 880));  // ratio of 992x736
  EXPECT_EQ(kontext_preferred_resolution(300, 1400), std::make_pair(672, 1568));
  // pipelines.md §5: 768x1344 stays, 512x512 becomes 1024x1024.
  EXPECT_EQ(kontext_output_size(768, 1344), std::make_pair(768, 1344));
  EXPECT_EQ(kontext_output_size(512, 512), std::make_pair(1024, 1024));
  EXPECT_EQ(kontext_output_size(1248, 832), std::make_pair(1248, 832));
}

TEST(Kontext, SizesTrueCfgAndSensitivity) {
  static Bundles& b = bundles();
  const std::string dir = b.dir / "kontext";
  if (!fs::exists(dir)) find_model_entry("flux1_kontext")->make_tiny(*find_model("flux1_kontext"), dir, {"tiny", 0});
  Runner k(dir, "flux1_kontext");
  auto run = [&](std::vector<Image> imgs, const std::string& text, uint64_t seed, double guidance,
                 std::optional<double> true_cfg = std::nullopt, std::optional<std::string> neg = std::nullopt) {
    EditRequest r;
    r.images = std::move(imgs);
    r.instruction = text;
    r.seed = seed;
    r.params.steps = 2;
    r.params.guidance = guidance;
    r.params.true_cfg = true_cfg;
    r.params.negative_prompt = neg;
    return k.pipe->edit(r);
  };
  const Image a = pattern(96, 64, 1), c = pattern(64, 64, 3);
  const EditResult base = run({a, c}, "make the cat red", 1, 2.5);
  EXPECT_EQ(base.image.width, 1248);  // the first image's preferred resolution
  EXPECT_EQ(base.image.height, 832);
  EXPECT_EQ(counter(base, "transformer_calls"), 2);
  EXPECT_EQ(run({a, c}, "make the cat red", 1, 2.5).image.rgb, base.image.rgb);
  EXPECT_NE(run({a, c}, "make the cat red", 2, 2.5).image.rgb, base.image.rgb);
  EXPECT_NE(run({a, c}, "make the cat blue", 1, 2.5).image.rgb, base.image.rgb);
  EXPECT_NE(run({a, c}, "make the cat red", 1, 3.5).image.rgb, base.image.rgb);  // guidance embedding
  Image c2 = c;
  c2.pixel(10, 10)[1] ^= 0xff;
  EXPECT_NE(run({a, c2}, "make the cat red", 1, 2.5).image.rgb, base.image.rgb);  // the second reference (ids 2)
  // T5 sees what CLIP's 77 tokens cut off.
  std::string long_text;
  for (int i = 0; i < 90; ++i) long_text += "cat ";
  EXPECT_NE(run({a}, long_text + "red", 1, 2.5).image.rgb, run({a}, long_text + "blue", 1, 2.5).image.rgb);
  // True CFG only with a scale above 1 and a negative prompt.
  EXPECT_EQ(counter(run({a}, "x", 1, 2.5, 2.0, std::string("blurry")), "transformer_calls"), 4);
  EXPECT_EQ(counter(run({a}, "x", 1, 2.5, 2.0), "transformer_calls"), 2);
  EXPECT_EQ(counter(run({a}, "x", 1, 2.5, 1.0, std::string("blurry")), "transformer_calls"), 2);
}
