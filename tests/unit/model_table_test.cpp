#include "diffgentor/model_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

using namespace dg;

TEST(ModelTable, TheToolsDefaultsPerType) {
  // The Python tool's defaults, pinned per type; every row of the table must be one of these.
  struct Row {
    const char* type;
    int steps;
    double guidance;
    const char* cls;
  };
  const std::vector<Row> rows = {Row{"qwen", 40, 1.0, "QwenImageEditPlusPipeline"},
                                 Row{"qwen_singleimg", 50, 1.0, "QwenImageEditPipeline"},
                                 Row{"flux2", 28, 4.0, "Flux2Pipeline"},
                                 Row{"flux2_klein", 4, 1.0, "Flux2KleinPipeline"},
                                 Row{"flux1_kontext", 30, 2.5, "FluxKontextPipeline"},
                                 Row{"longcat", 50, 4.5, "LongCatImageEditPipeline"},
                                 Row{"glm_image", 50, 1.5, "GlmImagePipeline"}};
  for (const Row& r : rows) {
    const ModelSpec* s = find_model(r.type);
    ASSERT_NE(s, nullptr) << r.type;
    EXPECT_EQ(s->default_steps, r.steps) << r.type;
    EXPECT_DOUBLE_EQ(s->default_guidance, r.guidance) << r.type;
    EXPECT_EQ(s->pipeline_class, r.cls);
  }
  for (const auto& s : model_table())
    EXPECT_TRUE(std::any_of(rows.begin(), rows.end(), [&](const Row& r) { return s.type == r.type; }))
        << s.type << " has no pinned defaults here";
  // True CFG is on by default for Qwen (negative " ", scale 4.0): not the Python tool's silent CFG-1.
  EXPECT_EQ(find_model("qwen")->default_true_cfg, 4.0);
  EXPECT_EQ(find_model("qwen")->default_negative_prompt, " ");
  EXPECT_EQ(find_model("qwen_singleimg")->images.max_images, 1);
  EXPECT_EQ(find_model("longcat")->images.max_images, 1);
  EXPECT_FALSE(find_model("qwen")->images.max_images.has_value());
  EXPECT_FALSE(find_model("flux2")->default_true_cfg.has_value());
  EXPECT_EQ(find_model("nope"), nullptr);
}

TEST(ModelTable, EveryRowIsCompleteAndItsFilesExist) {
  std::set<std::string> types, classes;
  for (const auto& s : model_table()) {
    EXPECT_TRUE(types.insert(s.type).second) << "duplicate type " << s.type;
    EXPECT_TRUE(classes.insert(s.pipeline_class).second) << "duplicate pipeline class " << s.pipeline_class;
    EXPECT_FALSE(s.patterns.empty()) << s.type;
    EXPECT_GE(s.images.min_images, 1) << s.type;
    if (!s.implemented()) continue;
    const std::string root = DG_SOURCE_DIR;
    EXPECT_TRUE(std::filesystem::is_regular_file(root + "/src/models/" + s.pipeline + ".cpp")) << s.type;
    EXPECT_TRUE(std::filesystem::is_regular_file(root + "/src/models/tiny/tiny_" + s.tiny_bundle + ".cpp")) << s.type;
    EXPECT_TRUE(std::filesystem::is_regular_file(root + "/" + s.docs)) << s.type << ": " << s.docs;
  }
}

TEST(ModelTable, InputRulesAndParameterMerging) {
  const ModelSpec& longcat = *find_model("longcat");
  EXPECT_EQ(image_count_problem(longcat, 1), "");
  EXPECT_EQ(image_count_problem(longcat, 2), "2 images, but model type longcat takes one");
  EXPECT_NE(image_count_problem(longcat, 0), "");
  EXPECT_EQ(image_count_problem(*find_model("qwen"), 9), "");
  const ModelSpec& flux2 = *find_model("flux2");
  EXPECT_EQ(image_size_problem(flux2, 64, 64), "");
  EXPECT_EQ(image_size_problem(flux2, 63, 640), "63x640: model type flux2 needs sides of at least 64 px");
  EXPECT_EQ(image_size_problem(flux2, 64, 512), "");  // aspect 8 is allowed, 8.03 is not
  EXPECT_EQ(image_size_problem(flux2, 64, 514), "64x514: model type flux2 needs an aspect ratio of at most 8");
  // Qwen2.5-VL's smart_resize refuses an aspect ratio over 200: so do the types that use it.
  for (const char* type : {"qwen", "longcat"}) {
    EXPECT_EQ(image_size_problem(*find_model(type), 1, 200), "") << type;
    EXPECT_NE(image_size_problem(*find_model(type), 1, 201), "") << type;
  }
  // qwen_singleimg resizes to 1024^2 in multiples of 32 before smart_resize: 1:165 would become 1:225.
  EXPECT_EQ(image_size_problem(*find_model("qwen_singleimg"), 10, 1500), "");
  EXPECT_NE(image_size_problem(*find_model("qwen_singleimg"), 10, 1650), "");
  EXPECT_EQ(image_size_problem(*find_model("flux1_kontext"), 16, 5000), "");
  EXPECT_NE(image_size_problem(*find_model("flux1_kontext"), 15, 64), "");
  // A given value always wins; unset values take the defaults; only models that use them get CFG fields.
  const EffectiveParams q = merge_params(*find_model("qwen"), {});
  EXPECT_EQ(q.steps, 40);
  EXPECT_EQ(q.true_cfg, 4.0);
  EXPECT_EQ(q.negative_prompt, " ");
  const EffectiveParams q0 = merge_params(*find_model("qwen"), {0, 0.0, 0.0, std::string("")});
  EXPECT_EQ(q0.steps, 0);
  EXPECT_EQ(q0.guidance, 0.0);
  EXPECT_EQ(q0.true_cfg, 0.0);
  EXPECT_EQ(q0.negative_prompt, "");
  const EffectiveParams f = merge_params(flux2, {std::nullopt, std::nullopt, 3.0, std::string("x")});
  EXPECT_FALSE(f.true_cfg.has_value());
  EXPECT_FALSE(f.negative_prompt.has_value());
}

// docs/models/README.md shows the table as `diffgentor models --markdown` prints it.
TEST(ModelTable, FlagsATypeDoesNotUseAreNamed) {
  auto warnings = [](const char* type, ParamOverrides given) {
    return dg::unused_param_warnings(*find_model(type), given);
  };
  const std::optional<std::string> neg("blurry");
  EXPECT_TRUE(warnings("qwen", {40, std::nullopt, 4.0, neg}).empty());  // everything Qwen uses
  auto w = warnings("flux2", {std::nullopt, 3.5, 4.0, neg});
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[0].find("--true_cfg_scale: model type flux2 has no true CFG"), std::string::npos) << w[0];
  EXPECT_NE(w[1].find("--negative_prompt: model type flux2 runs no negative branch"), std::string::npos) << w[1];
  w = warnings("qwen", {std::nullopt, 2.0, 1.0, neg});  // guidance unused; true CFG off: the negative prompt too
  ASSERT_EQ(w.size(), 2u);
  EXPECT_NE(w[0].find("--guidance_scale: model type qwen"), std::string::npos) << w[0];
  EXPECT_NE(w[1].find("only with --true_cfg_scale above 1"), std::string::npos) << w[1];
  EXPECT_EQ(warnings("flux1_kontext", {std::nullopt, std::nullopt, std::nullopt, neg}).size(), 1u);  // no scale
  EXPECT_TRUE(warnings("flux1_kontext", {std::nullopt, std::nullopt, 2.0, neg}).empty());
  EXPECT_TRUE(warnings("longcat", {std::nullopt, 4.0, std::nullopt, neg}).empty());
}

// Each type's output-size rule as its upstream pipeline applies it (upstream Qwen and FLUX.2
// floor to vae_scale_factor * 2 = 16, FluxKontextPipeline rescales the requested aspect to max_area = 1024^2 and then
// floors, GLM-Image's processor floors to 32, LongCatImageEditPipeline takes no height/width).
TEST(ModelTable, OutputSizeFollowsEachPipelinesRule) {
  auto size = [](const char* type, std::optional<int> w, std::optional<int> h, int dw, int dh) {
    ParamOverrides given;
    given.width = w, given.height = h;
    const ModelSpec& spec = *find_model(type);
    return resolve_output_size(spec, merge_params(spec, given), dw, dh);
  };
  using P = std::pair<int, int>;
  EXPECT_EQ(size("qwen", std::nullopt, std::nullopt, 1248, 832), P(1248, 832));  // no request: the default
  EXPECT_EQ(size("qwen", 1000, std::nullopt, 1248, 832), P(992, 832));           // height = height or calculated
  EXPECT_EQ(size("qwen_singleimg", 1023, 777, 1024, 1024), P(1008, 768));
  EXPECT_EQ(size("flux2", 79, 100, 512, 512), P(64, 96));
  EXPECT_EQ(size("flux1_kontext", 768, 1344, 1024, 1024), P(768, 1344));  // already ~1024^2: kept
  EXPECT_EQ(size("flux1_kontext", 512, 512, 1024, 1024), P(1024, 1024));  // rescaled up to max_area
  // 2048x1024: W = round(sqrt(2^20 * 2)) = 1448, H = round(sqrt(2^20 / 2)) = 724 -> floored to 1440x720.
  EXPECT_EQ(size("flux1_kontext", 2048, 1024, 1024, 1024), P(1440, 720));
  EXPECT_EQ(size("glm_image", 100, 70, 96, 64), P(96, 64));
  EXPECT_EQ(size("longcat", 512, 512, 1264, 848), P(1264, 848));  // no height/width upstream
  ParamOverrides w512;
  w512.width = 512;
  EXPECT_EQ(merge_params(*find_model("longcat"), w512).width, std::nullopt);

  EXPECT_NE(output_size_problem(*find_model("qwen"), "width", 15)
                .find("15 is outside 16..8192 (model type qwen floors the width to a multiple of 16)"),
            std::string::npos);
  EXPECT_EQ(output_size_problem(*find_model("qwen"), "width", 16), "");
  EXPECT_NE(output_size_problem(*find_model("glm_image"), "height", 31), "");
  EXPECT_NE(output_size_problem(*find_model("flux2"), "height", kMaxOutputSide + 1), "");
  EXPECT_EQ(output_size_problem(*find_model("longcat"), "height", 5), "");  // unused there: warned, not refused

  const auto w = unused_column_warnings(*find_model("qwen"), {"num_inference_steps", "guidance_scale", "width"});
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("manifest column 'guidance_scale': model type qwen"), std::string::npos) << w[0];
  const auto l = unused_column_warnings(*find_model("longcat"), {"true_cfg_scale", "negative_prompt", "height"});
  ASSERT_EQ(l.size(), 2u);
  EXPECT_NE(l[1].find("'height': model type longcat makes its output at the size it derives"), std::string::npos);
}

TEST(ModelTable, TheDocsTableIsTheTable) {
  std::ifstream in(std::string(DG_SOURCE_DIR) + "/docs/models/README.md");
  ASSERT_TRUE(in) << "docs/models/README.md";
  const std::string page((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string begin = "<!-- model table: diffgentor models --markdown -->\n", end = "<!-- /model table -->";
  const auto b = page.find(begin), e = page.find(end);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  EXPECT_EQ(page.substr(b + begin.size(), e - b - begin.size()), format_model_table_markdown())
      << "regenerate the table with: diffgentor models --markdown";
}

TEST(ModelTable, DetectionFollowsTheTableRules) {
  struct Case {
    const char* name;
    const char* type;
  };
  for (const Case& c :
       {Case{"Qwen/Qwen-Image-Edit-2511", "qwen"}, Case{"Qwen/Qwen-Image-Edit-2509", "qwen"},
        Case{"qwen/qwen-image-edit-anything", "qwen"}, Case{"Qwen/Qwen-Image-Edit", "qwen_singleimg"},
        Case{"/models/QWEN-IMAGE-EDIT/", "qwen_singleimg"}, Case{"/m/Qwen-Image-Edit_fp8", "qwen_singleimg"},
        Case{"black-forest-labs/FLUX.2-dev", "flux2"}, Case{"black-forest-labs/FLUX.2-klein-4B", "flux2_klein"},
        Case{"/ckpt/flux.2-klein-base-9b", "flux2_klein"},
        Case{"black-forest-labs/FLUX.1-Kontext-dev", "flux1_kontext"},
        Case{"meituan-longcat/LongCat-Image-Edit", "longcat"}, Case{"zai-org/GLM-Image", "glm_image"}}) {
    const ModelSpec* s = detect_model(c.name);
    ASSERT_NE(s, nullptr) << c.name;
    EXPECT_EQ(s->type, c.type) << c.name;
  }
  for (const char* none : {"Qwen/Qwen-Image-Editor", "stabilityai/sdxl", "FLUX.1-dev", ""})
    EXPECT_EQ(detect_model(none), nullptr) << none;
}

TEST(ModelTable, PrintedTableListsEveryType) {
  const std::string table = format_model_table();
  for (const auto& s : model_table()) {
    EXPECT_NE(table.find(s.type), std::string::npos);
    EXPECT_NE(table.find(s.pipeline_class), std::string::npos);
  }
  EXPECT_NE(table.find("Qwen-Image-Edit-*"), std::string::npos);
  EXPECT_EQ(model_type_list(), "qwen, qwen_singleimg, flux2, flux2_klein, flux1_kontext, longcat, glm_image");
}

TEST(ModelTable, ModelOptionsResolveAgainstTheRow) {
  const ModelSpec& glm = *find_model("glm_image");
  EXPECT_EQ(resolve_model_options(glm, {}), (std::map<std::string, std::string>{{"timesteps", "unshifted"}}));
  EXPECT_EQ(resolve_model_options(glm, {"timesteps=shifted"}).at("timesteps"), "shifted");
  auto error_of = [](const ModelSpec& spec, const std::string& given) {
    try {
      resolve_model_options(spec, {given});
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of(glm, "timesteps"), "--model_option 'timesteps': expected NAME=VALUE");
  EXPECT_EQ(error_of(glm, "timesteps=later"),
            "--model_option timesteps=later: 'later' is not one of unshifted, shifted");
  EXPECT_EQ(error_of(glm, "steps=2"),
            "--model_option steps=2: model type glm_image has no option 'steps' (it takes: timesteps)");
  EXPECT_EQ(error_of(*find_model("qwen"), "timesteps=shifted"),
            "--model_option timesteps=shifted: model type qwen has no option 'timesteps' (it takes none)");
  EXPECT_NE(model_options_text().find("--model_option for glm_image: timesteps=unshifted|shifted (default unshifted)"),
            std::string::npos);
}
