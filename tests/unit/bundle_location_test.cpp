#include "diffgentor/bundle_location.hpp"

#include <gtest/gtest.h>

#include <map>

#include "process.hpp"

using namespace dg;
using dg::test::TempDir;
using dg::test::write_text;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const char* n) -> const char* {
    auto it = vars.find(n);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

std::string not_found(const std::string& name, const EnvLookup& env) {
  try {
    resolve_bundle(name, env);
  } catch (const BundleNotFound& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(BundleLocation, DirectoryModelRootAndHfCache) {
  TempDir d;
  write_text(d / "direct/torchscript/manifest.json", "{}");
  EXPECT_EQ(resolve_bundle(d / "direct", env_of({})), d / "direct");

  write_text(d / "root/org/model-a/torchscript/manifest.json", "{}");
  EXPECT_EQ(resolve_bundle("org/model-a", env_of({{"DG_MODEL_ROOT", d / "root"}})), d / "root/org/model-a");

  const std::string snaps = d / "hub/models--Qwen--Qwen-Image-Edit-2511/snapshots";
  write_text(snaps + "/aaa/torchscript/manifest.json", "{}");
  write_text(snaps + "/bbb/torchscript/manifest.json", "{}");
  write_text(d / "hub/models--Qwen--Qwen-Image-Edit-2511/refs/main", "bbb\n");
  EXPECT_EQ(resolve_bundle("Qwen/Qwen-Image-Edit-2511", env_of({{"HF_HUB_CACHE", d / "hub"}})), snaps + "/bbb");
  write_text(d / "home/.cache/huggingface/hub/models--o--m/snapshots/r1/torchscript/manifest.json", "{}");
  EXPECT_EQ(resolve_bundle("o/m", env_of({{"HOME", d / "home"}})),
            d / "home/.cache/huggingface/hub/models--o--m/snapshots/r1");
  write_text(d / "hf/hub/models--o--m/snapshots/r2/torchscript/manifest.json", "{}");
  EXPECT_EQ(resolve_bundle("o/m", env_of({{"HF_HOME", d / "hf"}, {"HOME", d / "home"}})),
            d / "hf/hub/models--o--m/snapshots/r2");
}

TEST(BundleLocation, ErrorsSayWhereTheyLooked) {
  TempDir d;
  write_text(d / "empty/readme.txt", "x");
  EXPECT_NE(not_found(d / "empty", env_of({})).find("not a diffgentor bundle"), std::string::npos);
  // A diffusers snapshot without torchscript/: what was found, and the export command that makes a bundle of it.
  write_text(d / "plain/model_index.json",
             R"({"_class_name": "QwenImageEditPlusPipeline", "_diffusers_version": "x"})");
  std::string hint = not_found(d / "plain", env_of({}));
  EXPECT_NE(
      hint.find("found a diffusers snapshot at " + (d / "plain") + " (model_index.json: QwenImageEditPlusPipeline)"),
      std::string::npos)
      << hint;
  EXPECT_NE(hint.find("diffgentor export --model " + (d / "plain") + " --out " + (d / "plain") + "-diffgentor"),
            std::string::npos)
      << hint;
  const std::string cached = d / "hub/models--org--raw/snapshots/abc";
  write_text(cached + "/model_index.json", R"({"_class_name": "Flux2Pipeline"})");
  hint = not_found("org/raw", env_of({{"HF_HUB_CACHE", d / "hub"}, {"DG_MODEL_ROOT", d / "root"}}));
  EXPECT_NE(hint.find("found a diffusers snapshot at " + cached + " (model_index.json: Flux2Pipeline)"),
            std::string::npos)
      << hint;
  EXPECT_NE(hint.find("--model org/raw --out " + (d / "root/org/raw")), std::string::npos) << hint;
  const std::string msg = not_found("org/absent", env_of({{"DG_MODEL_ROOT", d / "root"}, {"HF_HUB_CACHE", d / "hub"}}));
  EXPECT_NE(msg.find("no model bundle found for --model_name org/absent"), std::string::npos) << msg;
  EXPECT_NE(msg.find(d / "root/org/absent"), std::string::npos) << msg;
  EXPECT_NE(msg.find(d / "hub/models--org--absent/snapshots"), std::string::npos) << msg;
  EXPECT_NE(not_found("x/y", env_of({})).find("$DG_MODEL_ROOT is not set"), std::string::npos);
}
