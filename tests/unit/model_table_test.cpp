#include "diffgentor/model_table.hpp"

#include <gtest/gtest.h>

#include <set>

using namespace dg;

TEST(ModelTable, SevenTypesWithTheSeedDefaults) {
  const auto& t = model_table();
  ASSERT_EQ(t.size(), 7u);
  std::set<std::string> types;
  for (const auto& s : t) types.insert(s.type);
  EXPECT_EQ(types, (std::set<std::string>{"qwen", "qwen_singleimg", "flux2", "flux2_klein", "flux1_kontext", "longcat",
                                          "glm_image"}));
  struct Row { const char* type; int steps; double guidance; const char* cls; };
  for (const Row& r : {Row{"qwen", 40, 1.0, "QwenImageEditPlusPipeline"}, Row{"qwen_singleimg", 50, 1.0, "QwenImageEditPipeline"},
                       Row{"flux2", 28, 4.0, "Flux2Pipeline"}, Row{"flux2_klein", 4, 1.0, "Flux2KleinPipeline"},
                       Row{"flux1_kontext", 30, 2.5, "FluxKontextPipeline"}, Row{"longcat", 50, 4.5, "LongCatImageEditPipeline"},
                       Row{"glm_image", 50, 1.5, "GlmImagePipeline"}}) {
    const ModelSpec* s = find_model(r.type);
    ASSERT_NE(s, nullptr) << r.type;
    EXPECT_EQ(s->default_steps, r.steps) << r.type;
    EXPECT_DOUBLE_EQ(s->default_guidance, r.guidance) << r.type;
    EXPECT_EQ(s->pipeline_class, r.cls);
  }
  // True CFG is on by default for Qwen (negative " ", scale 4.0): not the Python tool's silent CFG-1.
  EXPECT_EQ(find_model("qwen")->default_true_cfg, 4.0);
  EXPECT_EQ(find_model("qwen")->default_negative_prompt, " ");
  EXPECT_EQ(find_model("qwen_singleimg")->max_images, 1);
  EXPECT_EQ(find_model("longcat")->max_images, 1);
  EXPECT_EQ(find_model("qwen")->max_images, 0);
  EXPECT_FALSE(find_model("flux2")->default_true_cfg.has_value());
  EXPECT_EQ(find_model("nope"), nullptr);
}

TEST(ModelTable, DetectionFollowsTheSeedRules) {
  struct Case { const char* name; const char* type; };
  for (const Case& c : {Case{"Qwen/Qwen-Image-Edit-2511", "qwen"}, Case{"Qwen/Qwen-Image-Edit-2509", "qwen"},
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
