#include "diffgentor/options.hpp"

#include <gtest/gtest.h>

#include <limits>

#include "diffgentor/cli.hpp"
#include "process.hpp"

using namespace dg;

namespace {

EditOptions valid() {
  EditOptions o;
  o.model_name = "Qwen/Qwen-Image-Edit-2511";
  o.input = "m.csv";
  o.output_dir = "out";
  return o;
}

std::string usage_error(const EditOptions& o) {
  try {
    validate_options(o);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

int parse(std::vector<std::string> args, Command& cmd) {
  args.insert(args.begin(), "diffgentor");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  const auto code = parse_command_line(static_cast<int>(argv.size()), argv.data(), cmd, "v");
  return code ? *code : -1;
}

}  // namespace

TEST(Options, EffectiveParamsMergeFlagsOverDefaults) {
  EditOptions o = valid();
  EffectiveParams p = effective_params(*find_model("qwen"), o);
  EXPECT_EQ(p.steps, 40);
  EXPECT_DOUBLE_EQ(p.guidance, 1.0);
  EXPECT_EQ(p.true_cfg, 4.0);
  EXPECT_EQ(p.negative_prompt, " ");
  o.guidance_scale = 0.0;  // 0 is a value, not "unset"
  o.true_cfg_scale = 1.0;
  o.num_inference_steps = 3;
  o.negative_prompt = "blurry";
  p = effective_params(*find_model("qwen"), o);
  EXPECT_DOUBLE_EQ(p.guidance, 0.0);
  EXPECT_EQ(p.true_cfg, 1.0);
  EXPECT_EQ(p.steps, 3);
  EXPECT_EQ(p.negative_prompt, "blurry");
  p = effective_params(*find_model("flux2"), valid());
  EXPECT_FALSE(p.true_cfg.has_value());
  EXPECT_FALSE(p.negative_prompt.has_value());
  EXPECT_EQ(p.steps, 28);
  EXPECT_EQ(effective_params(*find_model("longcat"), valid()).negative_prompt, "");
  // FLUX.1-Kontext: true CFG stays off unless asked for, and no negative prompt is invented.
  p = effective_params(*find_model("flux1_kontext"), valid());
  EXPECT_FALSE(p.true_cfg.has_value());
  EXPECT_FALSE(p.negative_prompt.has_value());
  EditOptions k = valid();
  k.true_cfg_scale = 2.0;
  k.negative_prompt = "blurry";
  p = effective_params(*find_model("flux1_kontext"), k);
  EXPECT_EQ(p.true_cfg, 2.0);
  EXPECT_EQ(p.negative_prompt, "blurry");
}

// Numbers must be finite ("inf" and "nan" parse as doubles) and timeouts longer than the clock's 1 ms.
TEST(Options, NonFiniteAndTooSmallValuesAreRefused) {
  auto with = [](auto change) {
    EditOptions o = valid();
    change(o);
    return usage_error(o);
  };
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NE(with([&](EditOptions& o) { o.true_cfg_scale = inf; }).find("--true_cfg_scale inf: must be a finite"),
            std::string::npos);
  EXPECT_NE(with([&](EditOptions& o) { o.guidance_scale = nan; }).find("--guidance_scale nan: must be a finite"),
            std::string::npos);
  EXPECT_NE(with([&](EditOptions& o) { o.download_timeout = inf; }).find("--download_timeout"), std::string::npos);
  EXPECT_NE(with([&](EditOptions& o) { o.grace_seconds = -1; }).find("--grace_seconds"), std::string::npos);
  EXPECT_NE(with([](EditOptions& o) { o.download_timeout = 0.0004; }).find("must be at least 0.001"),
            std::string::npos);
  EXPECT_NE(with([](EditOptions& o) { o.timeout = 0.0001; }).find("--timeout"), std::string::npos);
  EXPECT_EQ(with([](EditOptions& o) { o.download_timeout = 0.001; }), "");
}

TEST(Options, ValidationNamesTheFlag) {
  EXPECT_EQ(usage_error(valid()), "");
  auto with = [](auto change) {
    EditOptions o = valid();
    change(o);
    return usage_error(o);
  };
  EXPECT_NE(with([](EditOptions& o) { o.backend = "xdit"; }).find("--backend xdit: not available in this build"),
            std::string::npos);
  EXPECT_NE(with([](EditOptions& o) { o.device = "gpu"; }).find("--device gpu"), std::string::npos);
  EXPECT_NE(with([](EditOptions& o) { o.num_inference_steps = 0; }).find("--num_inference_steps 0"), std::string::npos);
  EXPECT_NE(with([](EditOptions& o) { o.guidance_scale = -1; }).find("--guidance_scale"), std::string::npos);
  EXPECT_NE(with([](EditOptions& o) {
              o.node_rank = 3;
              o.num_nodes = 3;
            }).find("--node_rank 3"),
            std::string::npos);
  EXPECT_NE(with([](EditOptions& o) { o.filter_rows = "x:y"; }).find("--filter_rows"), std::string::npos);
  EXPECT_NE(with([](EditOptions& o) { o.torch_dtype = "int8"; }).find("--torch_dtype"), std::string::npos);
  EXPECT_NE(with([](EditOptions& o) { o.batch_size = 0; }).find("--batch_size"), std::string::npos);
  EXPECT_NE(with([](EditOptions& o) {
              o.num_gpus = 2;
              o.device = "cpu";
            }).find("--num_gpus"),
            std::string::npos);
  EXPECT_NE(with([](EditOptions& o) { o.seed = -1; }).find("--seed"), std::string::npos);
  {  // a folder whose name says nothing: its bundle manifest, else its diffusers pipeline class, names the type
    dg::test::TempDir d;
    dg::test::write_text(d / "snap/model_index.json", R"({"_class_name": "Flux2KleinPipeline"})");
    EditOptions o;
    o.model_name = d / "snap";
    EXPECT_EQ(resolve_model_type(o).type, "flux2_klein");
    dg::test::write_text(d / "snap/torchscript/manifest.json", R"({"model_type": "flux2"})");
    EXPECT_EQ(resolve_model_type(o).type, "flux2");
  }
  const std::string unknown = with([](EditOptions& o) { o.model_name = "some/model"; });
  EXPECT_NE(unknown.find("cannot detect the model type"), std::string::npos);
  EXPECT_NE(unknown.find("glm_image"), std::string::npos);
  EXPECT_NE(with([](EditOptions& o) { o.model_type = "sd3"; }).find("known types: qwen,"), std::string::npos);
}

TEST(Cli, UnsetNumbersStayUnsetAndFlagsParse) {
  Command cmd;
  ASSERT_EQ(parse({"edit", "--model_name", "m", "--input", "i.csv", "--output_dir", "o"}, cmd), -1);
  EXPECT_EQ(cmd.kind, Command::Edit);
  EXPECT_FALSE(cmd.edit.guidance_scale.has_value());
  EXPECT_FALSE(cmd.edit.num_inference_steps.has_value());
  EXPECT_FALSE(cmd.edit.seed.has_value());
  EXPECT_FALSE(cmd.edit.num_nodes.has_value());
  EXPECT_TRUE(cmd.edit.resume);

  Command c2;
  ASSERT_EQ(parse({"edit",
                   "--model_name",
                   "m",
                   "--input",
                   "i.csv",
                   "--output_dir",
                   "o",
                   "--guidance_scale",
                   "0",
                   "--seed",
                   "0",
                   "--no_resume",
                   "--filter_rows",
                   "0:10",
                   "--output_name_column",
                   "name",
                   "--enable_vae_tiling",
                   "--num_nodes",
                   "2",
                   "--node_rank",
                   "1"},
                  c2),
            -1);
  EXPECT_EQ(c2.edit.guidance_scale, 0.0);
  EXPECT_EQ(c2.edit.seed, 0);
  EXPECT_FALSE(c2.edit.resume);
  EXPECT_EQ(c2.edit.filter_rows, "0:10");
  EXPECT_EQ(c2.edit.output_name_column, "name");
  EXPECT_TRUE(c2.edit.enable_vae_tiling);
  EXPECT_EQ(c2.edit.node_rank, 1);

  Command c3;
  EXPECT_EQ(parse({"edit", "--model_name", "m", "--input", "i", "--output_dir", "o", "--guidance_scale", "abc"}, c3),
            kExitUsage);
  Command c4;
  EXPECT_EQ(parse({"models"}, c4), -1);
  EXPECT_EQ(c4.kind, Command::Models);
}

// A seed that does not fit 64 bits is refused (CLI11 alone would saturate it to 2^63-1).
TEST(Cli, SeedOutOfRangeIsRefused) {
  Command cmd;
  EXPECT_EQ(
      parse({"edit", "--model_name", "m", "--input", "i", "--output_dir", "o", "--seed", "99999999999999999999"}, cmd),
      kExitUsage);
  Command ok;
  ASSERT_EQ(
      parse({"edit", "--model_name", "m", "--input", "i", "--output_dir", "o", "--seed", "9223372036854775807"}, ok),
      -1);
  EXPECT_EQ(ok.edit.seed, INT64_MAX);
}
