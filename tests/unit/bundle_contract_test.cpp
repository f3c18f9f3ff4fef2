// docs/bundle-format.md must describe the contract table the loader and make-tiny use.
#include "diffgentor/bundle_contract.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "diffgentor/model_table.hpp"

TEST(BundleContract, EveryTypeHasComponentsAndTheDocsNameThemAll) {
  std::ifstream in(std::string(DG_SOURCE_DIR) + "/docs/bundle-format.md");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  ASSERT_FALSE(doc.empty());
  for (const auto& spec : dg::model_table()) {
    const auto& components = dg::bundle_components(spec.type);
    ASSERT_FALSE(components.empty()) << spec.type;
    EXPECT_NE(doc.find("`" + spec.type + "`"), std::string::npos) << spec.type;
    std::set<std::string> names;
    for (const auto& c : components) {
      EXPECT_NE(doc.find("`" + c.name + "`"), std::string::npos) << spec.type << " " << c.name;
      if (c.method != "forward") {
        EXPECT_NE(doc.find(c.name + "." + c.method), std::string::npos);
      }
      EXPECT_TRUE(names.insert(c.name + "." + c.method).second) << "duplicate " << c.name;
      for (const auto& t : c.inputs)
        EXPECT_NE(doc.find("`" + t.name + "`"), std::string::npos) << c.name << " " << t.name;
      for (const auto& t : c.outputs)
        EXPECT_NE(doc.find("`" + t.name + "`"), std::string::npos) << c.name << " " << t.name;
    }
  }
}

TEST(BundleContract, TypesWhoseSignaturesChangedNeedTheNewerFormat) {
  EXPECT_EQ(dg::min_bundle_format_version("glm_image"), 2);  // prefill/decode, no image_seg, symbolic DiT shapes
  EXPECT_EQ(dg::min_bundle_format_version("qwen"), 3);       // the DiT's text mask
  EXPECT_EQ(dg::min_bundle_format_version("longcat"), 1);    // unchanged since version 1
  EXPECT_LE(dg::min_bundle_format_version("glm_image"), dg::kBundleFormatVersion);
}
