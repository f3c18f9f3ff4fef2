// Prompt enhancement through the real CLI and runner: latency hidden behind the model stage,
// results recorded, the key kept out of every output.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "diffgentor/model_table.hpp"
#include "diffgentor/options.hpp"
#include "e2e_util.hpp"
#include "http_server.hpp"
#include "test_backend.hpp"

namespace fs = std::filesystem;
using namespace dg;
using namespace dg::test;
using nlohmann::json;

namespace {

const std::string kKey = "sk-e2e-SECRET-777";

std::string chat_reply(const std::string& content) {
  return json{{"choices", {{{"message", {{"role", "assistant"}, {"content", content}}}}}}}.dump();
}

// Rewrites "row N" into "ENHANCED row N" after `delay_ms`.
void rewriting_server(HttpServer& server, int delay_ms) {
  server.set_handler([delay_ms](const HttpRequest& r, int) {
    const json body = json::parse(r.body);
    const std::string text = body["messages"][1]["content"].back()["text"];
    return HttpResponse{200, chat_reply(json{{"Rewritten", "ENHANCED " + text}}.dump()), {}, delay_ms};
  });
}

std::map<std::string, std::string> enhancer_env(const HttpServer& server) {
  return {{"DG_PROMPT_ENHANCER_API_KEY", kKey}, {"DG_PROMPT_ENHANCER_API_BASE", server.url("/v1")}};
}

std::string manifest_of(Workspace& ws, int rows) {
  ws.image("a.png", 8, 8);
  std::string csv = "image,instruction\n";
  for (int k = 0; k < rows; ++k) csv += "a.png,row " + std::to_string(k) + "\n";
  return ws.file("m.csv", csv);
}

}  // namespace

TEST(EnhanceE2E, ApiLatencyOverlapsTheModelStage) {
  Workspace ws;
  HttpServer server;
  rewriting_server(server, 300);
  const std::string m = manifest_of(ws, 8);
  auto env = enhancer_env(server);
  env["DG_TESTPIPE_DELAY_MS"] = "100";
  const auto t0 = std::chrono::steady_clock::now();
  const ProcessResult r =
      ws.edit({"--input", m, "--prompt_enhance_type", "qwen_image_edit", "--enhance_workers", "4", "--seed", "1"}, env);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Serially: 8 x (0.3 s API + 0.1 s model) = 3.2 s. Four requests in flight ahead of the model:
  // about 2 x 0.3 s of API time, mostly hidden, plus 8 x 0.1 s of model time.
  EXPECT_LT(wall, 2.0) << "wall " << wall << " s";
  const RecordTable res = ws.results();
  ASSERT_EQ(res.records.size(), 8u);
  for (const auto& rec : res.records) {
    EXPECT_EQ(rec.at("enhance_status"), "ok");
    EXPECT_EQ(rec.at("instruction_enhanced"), "ENHANCED row " + rec.at("index"));
  }
  // The model received the enhanced instruction.
  EditRequest req;
  req.images = {read_image(ws.dir / "a.png")};
  req.instruction = "ENHANCED row 3";
  req.seed = 4;
  req.params = effective_params(*find_model("qwen"), EditOptions{});
  EXPECT_EQ(read_image(ws.out + "/000003.png").rgb, test_pipeline_output(req).rgb);
}

TEST(EnhanceE2E, FailuresFallBackVisiblyAndTheKeyAppearsNowhere) {
  Workspace ws;
  HttpServer server;
  server.set_handler([](const HttpRequest& r, int) {
    const json body = json::parse(r.body);
    const std::string text = body["messages"][1]["content"].back()["text"];
    if (text == "row 1") return HttpResponse{401, "bad key " + kKey, {}, 0};
    return HttpResponse{200, chat_reply("{\"Rewritten\": \"better " + text + "\"}"), {}, 0};
  });
  const std::string m = manifest_of(ws, 3);
  auto env = enhancer_env(server);
  env["DG_PROMPT_ENHANCER_DEBUG"] = "1";
  env["DG_PROMPT_ENHANCER_DEBUG_DIR"] = ws.dir / "debug";
  const ProcessResult r = ws.edit({"--input", m, "--prompt_enhance_type", "qwen_image_edit", "-v"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;  // a fallback is not a failed row
  const RecordTable res = ws.results();
  EXPECT_EQ(res.find("0")->at("instruction_enhanced"), "better row 0");
  EXPECT_EQ(res.find("1")->at("instruction_enhanced"), "row 1");
  EXPECT_NE(res.find("1")->at("enhance_status").find("fallback: HTTP 401"), std::string::npos);
  EXPECT_NE(r.err.find("index 1: prompt enhancement failed"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(ws.dir / "debug/prompt_enhancer/1.log"));
  EXPECT_EQ(r.out.find(kKey), std::string::npos);
  EXPECT_EQ(r.err.find(kKey), std::string::npos);
  for (const std::string& dir : {ws.out, ws.dir / "debug"})
    for (const auto& f : files_below(dir)) EXPECT_EQ(read_text(dir + "/" + f).find(kKey), std::string::npos) << f;
}

TEST(EnhanceE2E, MissingKeyOrUnsupportedModeFailsBeforeAnyWork) {
  Workspace ws;
  const std::string m = manifest_of(ws, 2);
  ProcessResult r = ws.edit({"--input", m, "--prompt_enhance_type", "glm_image"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("set DG_PROMPT_ENHANCER_API_KEY"), std::string::npos) << r.err;
  // flux2's default mode rewrites with FLUX.2-dev's own Mistral, which this model type lacks
  r = ws.edit({"--input", m, "--prompt_enhance_type", "flux2"}, {{"DG_PROMPT_ENHANCER_API_KEY", "k"}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("FLUX.2-dev's own Mistral"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("DG_FLUX2_ENHANCER_MODE=api"), std::string::npos) << r.err;
  r = ws.edit({"--input", m, "--prompt_enhance_type", "flux2"}, {{"DG_FLUX2_ENHANCER_MODE", "local"}});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("expected api or diffusers"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(ws.out + "/results.csv"));
}
