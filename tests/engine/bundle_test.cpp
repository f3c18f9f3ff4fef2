// Bundle validation: every way a bundle can be unusable is refused at load with a message that names the
// bundle, the file and what is wrong.
#include <gtest/gtest.h>
#include <torch/script.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "diffgentor/bundle.hpp"
#include "fixture.hpp"

namespace fs = std::filesystem;
using namespace dg;

TEST(Bundle, LoadErrorsNameWhatIsWrong) {
  dg::test::TempDir d;
  auto copy = [&](const std::string& name) {
    const std::string dst = d / name;
    fs::copy(dg::test::tiny_bundle("qwen"), dst, fs::copy_options::recursive);
    return dst;
  };
  auto error_of = [&](const std::string& dir, const std::string& dtype = "bfloat16") -> std::string {
    try {
      dg::test::Runner("qwen", dtype, dir);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  const std::string missing = copy("missing");
  fs::remove(missing + "/torchscript/transformer.pt");
  EXPECT_NE(error_of(missing).find("component 'transformer': file torchscript/transformer.pt does not exist"),
            std::string::npos)
      << error_of(missing);

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
  EXPECT_NE(error_of(dtype).find("exported in float32, but the run dtype is bfloat16"), std::string::npos);
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
  edit_manifest(ops, [](nlohmann::json& m) {
    m["components"]["text_encoder"]["required_ops"] = {"aten::matmul", "prim::device"};
  });
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
