// The prompt enhancer and its chat client against a real HTTP server on 127.0.0.1.
#include "diffgentor/enhancer.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "diffgentor/image_io.hpp"
#include "http_server.hpp"
#include "process.hpp"

using namespace dg;
using dg::test::HttpRequest;
using dg::test::HttpResponse;
using dg::test::HttpServer;
using nlohmann::json;

namespace {

const std::string kKey = "sk-test-SECRET-42";

std::string chat_reply(const std::string& content) {
  return json{{"id", "x"}, {"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", content}}}}}}}
      .dump();
}

EnhancerConfig config_for(const HttpServer& server, const std::string& type, int retries = 0, double timeout = 5) {
  EnhancerConfig c;
  c.type = type;
  c.flux2_mode = "api";
  c.client.api_base = server.url("/v1");
  c.client.api_key = kKey;
  c.client.timeout_s = timeout;
  c.client.max_retries = retries;
  c.client.retry_delay_s = 0.01;
  return c;
}

Image img(int w, int h) { return Image{w, h, std::vector<uint8_t>(static_cast<std::size_t>(w) * h * 3, 77)}; }

std::string b64decode(const std::string& s) {
  const std::string t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    if (c == '=') break;
    acc = (acc << 6) | static_cast<uint32_t>(t.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

}  // namespace

TEST(Enhancer, QwenRequestCarriesEveryImageAndParsesJson) {
  // Declared before the server, so the server's threads are joined before what they write is destroyed; the handler
  // runs on a server thread, hence the lock.
  std::mutex mu;
  HttpRequest first;
  HttpServer server;
  server.set_handler([&](const HttpRequest& r, int) {
    std::lock_guard<std::mutex> lock(mu);
    if (first.method.empty()) first = r;
    return HttpResponse{200, chat_reply("{\"Rewritten\": \"Make the sky violet; keep the horizon\"}"), {}, 0};
  });
  PromptEnhancer e(config_for(server, "qwen_image_edit"));
  const EnhanceOutcome out = e.enhance(3, "purple sky", {img(8, 8), img(6, 4)});
  EXPECT_TRUE(out.ok()) << out.status;
  EXPECT_EQ(out.instruction, "Make the sky violet; keep the horizon");
  const HttpRequest seen = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return first;
  }();
  EXPECT_EQ(seen.method, "POST");
  EXPECT_EQ(seen.path, "/v1/chat/completions");
  ASSERT_EQ(seen.headers.count("authorization"), 1u);
  EXPECT_EQ(seen.headers.at("authorization"), "Bearer " + kKey);
  const json body = json::parse(seen.body);
  EXPECT_EQ(body["model"], "gpt-4o");
  EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 0.15);
  EXPECT_EQ(body["response_format"]["type"], "json_object");
  const json& user = body["messages"][1]["content"];
  ASSERT_EQ(user.size(), 3u);
  EXPECT_EQ(user[0]["type"], "image_url");
  EXPECT_EQ(user[1]["image_url"]["url"].get<std::string>().rfind("data:image/png;base64,", 0), 0u);
  EXPECT_EQ(user[2]["text"], "purple sky");
  EXPECT_NE(body["messages"][0]["content"].get<std::string>().find("\"Rewritten\""), std::string::npos);
}

TEST(Enhancer, TolerantParsingAndUnusableReplies) {
  EXPECT_EQ(parse_enhancer_reply(chat_reply("```json\n{\"Rewritten\": \"fenced\"}\n```"), true), "fenced");
  EXPECT_EQ(parse_enhancer_reply(chat_reply("Sure! {\"rewritten\": \"in prose\"} Hope it helps."), true), "in prose");
  EXPECT_EQ(parse_enhancer_reply(chat_reply("\"A red fox in snow\""), false), "A red fox in snow");
  EXPECT_EQ(parse_enhancer_reply(chat_reply("```\nplain fenced text\n```"), false), "plain fenced text");
  auto reason = [](const std::string& body, bool json_expected) {
    try {
      parse_enhancer_reply(body, json_expected);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(reason(chat_reply("I cannot help with that."), true).find("no JSON object"), std::string::npos);
  EXPECT_NE(reason(chat_reply("{\"Other\": 1}"), true).find("Rewritten"), std::string::npos);
  EXPECT_NE(reason("<html>oops</html>", false).find("not JSON"), std::string::npos);
  EXPECT_NE(reason("{\"choices\": []}", false).find("choices[0]"), std::string::npos);
  EXPECT_NE(reason(chat_reply("   "), false).find("empty"), std::string::npos);
}

TEST(Enhancer, NonJsonReplyFallsBackWithReason) {
  HttpServer server;
  server.set_handler([](const HttpRequest&, int) { return HttpResponse{200, chat_reply("no json here"), {}, 0}; });
  const EnhanceOutcome out = PromptEnhancer(config_for(server, "qwen_image_edit")).enhance(1, "orig", {img(4, 4)});
  EXPECT_FALSE(out.ok());
  EXPECT_EQ(out.instruction, "orig");
  EXPECT_NE(out.status.find("fallback: the model's answer holds no JSON object"), std::string::npos) << out.status;
}

TEST(Enhancer, RetriesServerErrorsAndHonoursRetryAfter) {
  HttpServer server;
  server.set_handler([](const HttpRequest& r, int hit) {
    if (r.path == "/v1/chat/completions" && hit == 1) return HttpResponse{500, "boom", {}, 0};
    return HttpResponse{200, chat_reply("recovered"), {}, 0};
  });
  EXPECT_EQ(PromptEnhancer(config_for(server, "glm_image", 2)).enhance(1, "x", {}).instruction, "recovered");
  EXPECT_EQ(server.hits("/v1/chat/completions"), 2);

  HttpServer limited;
  limited.set_handler([](const HttpRequest&, int hit) {
    if (hit == 1) return HttpResponse{429, "slow down", {{"Retry-After", "1"}}, 0};
    return HttpResponse{200, chat_reply("after waiting"), {}, 0};
  });
  const auto t0 = std::chrono::steady_clock::now();
  const EnhanceOutcome out = PromptEnhancer(config_for(limited, "glm_image", 1)).enhance(1, "x", {});
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(out.instruction, "after waiting");
  EXPECT_GE(waited, 0.95);  // Retry-After: 1 beats the 10 ms backoff
  EXPECT_EQ(limited.hits("/v1/chat/completions"), 2);
}

TEST(Enhancer, UnauthorizedIsNotRetriedAndNeverShowsTheKey) {
  HttpServer server;
  server.set_handler([](const HttpRequest&, int) { return HttpResponse{401, "invalid key " + kKey, {}, 0}; });
  const EnhanceOutcome out = PromptEnhancer(config_for(server, "glm_image", 3)).enhance(1, "x", {});
  EXPECT_FALSE(out.ok());
  EXPECT_EQ(server.hits("/v1/chat/completions"), 1);
  EXPECT_NE(out.status.find("HTTP 401 (check DG_PROMPT_ENHANCER_API_KEY)"), std::string::npos) << out.status;
  EXPECT_EQ(out.status.find(kKey), std::string::npos) << out.status;
  EXPECT_NE(out.status.find("invalid key ***"), std::string::npos);
}

TEST(Enhancer, TimeoutRefusedRedirectAndHugeReplies) {
  HttpServer server;
  server.set_handler([&](const HttpRequest& r, int) {
    if (r.path == "/slow/chat/completions") return HttpResponse{200, chat_reply("late"), {}, 3000};
    if (r.path == "/moved/chat/completions")
      return HttpResponse{307, "", {{"Location", server.url("/v1/chat/completions")}}, 0};
    if (r.path == "/huge/chat/completions") return HttpResponse{200, std::string(6 << 20, 'x'), {}, 0};
    return HttpResponse{r.method == "POST" && !r.body.empty() ? 200 : 400, chat_reply("followed"), {}, 0};
  });
  EnhancerConfig c = config_for(server, "glm_image", 0, 0.3);
  c.client.api_base = server.url("/slow");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_NE(PromptEnhancer(c).enhance(1, "x", {}).status.find("timed out after 0.3 s"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));

  c = config_for(server, "glm_image");
  c.client.api_base = server.url("/moved");
  EXPECT_EQ(PromptEnhancer(c).enhance(1, "x", {}).instruction, "followed");  // POST kept across the 307

  c.client.api_base = server.url("/huge");
  EXPECT_NE(PromptEnhancer(c).enhance(1, "x", {}).status.find("reply larger than"), std::string::npos);

  const dg::test::ClosedPort closed;
  c.client.api_base = closed.url("/v1");
  EXPECT_NE(PromptEnhancer(c).enhance(1, "x", {}).status.find("connection refused"), std::string::npos);
}

TEST(Enhancer, GlmAnswersInTheInputsLanguageAndFlux2PicksItsMode) {
  std::vector<json> bodies;  // before the server: its threads are joined first
  std::mutex mu;
  HttpServer server;
  server.set_handler([&](const HttpRequest& r, int) {
    std::lock_guard<std::mutex> lock(mu);
    bodies.push_back(json::parse(r.body));
    return HttpResponse{200, chat_reply("ok text"), {}, 0};
  });
  PromptEnhancer glm(config_for(server, "glm_image"));
  glm.enhance(1, "一只猫坐在窗台上", {img(4, 4)});
  glm.enhance(2, "a cat on a windowsill", {img(4, 4)});
  PromptEnhancer flux(config_for(server, "flux2"));
  flux.enhance(3, "make it night", {img(4, 4)});
  flux.enhance(4, "a lighthouse at dusk", {});
  ASSERT_EQ(bodies.size(), 4u);
  EXPECT_NE(bodies[0]["messages"][0]["content"].get<std::string>().find("中文"), std::string::npos);
  EXPECT_EQ(bodies[1]["messages"][0]["content"].get<std::string>().find("中文"), std::string::npos);
  EXPECT_EQ(bodies[0]["messages"][1]["content"].size(), 1u);  // glm_image sends no images
  EXPECT_FALSE(bodies[0].contains("response_format"));
  EXPECT_EQ(bodies[2]["messages"][1]["content"][0]["type"], "image_url");
  EXPECT_NE(bodies[2]["messages"][0]["content"].get<std::string>().find("image-editing"), std::string::npos);
  EXPECT_EQ(bodies[3]["messages"][1]["content"].size(), 1u);
  EXPECT_NE(bodies[3]["messages"][0]["content"].get<std::string>().find("text-to-image"), std::string::npos);
  EXPECT_TRUE(contains_cjk("说明"));
  EXPECT_FALSE(contains_cjk("café"));
}

TEST(Enhancer, ImagesAreCappedAt2000PixelsOnTheLongestSide) {
  HttpServer server;
  PromptEnhancer e(config_for(server, "qwen_image_edit"));
  const json body = json::parse(e.request_body("x", {img(2400, 1200), img(300, 200)}));
  const std::string url0 = body["messages"][1]["content"][0]["image_url"]["url"];
  const Image sent = decode_image(b64decode(url0.substr(url0.find(',') + 1)), 1 << 30);
  EXPECT_EQ(sent.width, 2000);
  EXPECT_EQ(sent.height, 1000);
  const std::string url1 = body["messages"][1]["content"][1]["image_url"]["url"];
  EXPECT_EQ(decode_image(b64decode(url1.substr(url1.find(',') + 1)), 1 << 30).width, 300);
}

// The UsageError enhancer_config raises for these settings ("" when it accepts them).
static std::string usage_error(const EditOptions& o, const EnvLookup& env) {
  try {
    enhancer_config(o, env);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(Enhancer, ConfigurationFromTheEnvironment) {
  EditOptions o;
  o.output_dir = "out";
  o.prompt_enhance_type = "qwen_image_edit";
  std::map<std::string, std::string> vars;
  auto env = [&](const char* n) -> const char* {
    auto it = vars.find(n);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
  auto usage = [&] { return usage_error(o, env); };
  EXPECT_NE(usage().find("set DG_PROMPT_ENHANCER_API_KEY"), std::string::npos);
  vars["DG_PROMPT_ENHANCER_API_KEY"] = "k";
  EnhancerConfig c = enhancer_config(o, env);
  EXPECT_EQ(c.client.api_base, "https://api.openai.com/v1");
  EXPECT_EQ(c.model, "gpt-4o");
  EXPECT_DOUBLE_EQ(c.temperature, 0.15);
  EXPECT_FALSE(c.debug);
  EXPECT_EQ(c.debug_dir, "out");
  EXPECT_EQ(c.concurrency, 4);
  EXPECT_EQ(c.client.max_retries, 3);
  vars["DG_PROMPT_ENHANCER_API_BASE"] = "ftp://host/v1";
  EXPECT_NE(usage().find("only http:// and https://"), std::string::npos);
  vars["DG_PROMPT_ENHANCER_API_BASE"] = "http://127.0.0.1:1/v1";
  vars["DG_PROMPT_ENHANCER_TEMPERATURE"] = "hot";
  EXPECT_NE(usage().find("DG_PROMPT_ENHANCER_TEMPERATURE"), std::string::npos);
  vars["DG_PROMPT_ENHANCER_TEMPERATURE"] = "0.7";
  vars["DG_PROMPT_ENHANCER_DEBUG"] = "true";
  vars["DG_PROMPT_ENHANCER_MODEL"] = "local-model";
  c = enhancer_config(o, env);
  EXPECT_TRUE(c.debug);
  EXPECT_EQ(c.model, "local-model");
  EXPECT_DOUBLE_EQ(c.temperature, 0.7);
  o.prompt_enhance_type = "flux2";
  vars["DG_FLUX2_ENHANCER_MODE"] = "API";
  c = enhancer_config(o, env);
  EXPECT_EQ(c.flux2_mode, "api");
  EXPECT_FALSE(c.upsampling.enabled);
  vars["DG_FLUX2_ENHANCER_MODE"] = "local";
  EXPECT_NE(usage().find("DG_FLUX2_ENHANCER_MODE='local': expected api or diffusers"), std::string::npos);
}

TEST(Enhancer, Flux2DefaultModeUsesTheBundlesOwnModelAndNoApi) {
  std::map<std::string, std::string> vars;  // no API key, no base: nothing goes over the network
  const EnvLookup env = [&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
  EditOptions o;
  o.output_dir = "out";
  o.prompt_enhance_type = std::string("flux2");
  EnhancerConfig c = enhancer_config(o, env);
  EXPECT_EQ(c.flux2_mode, "diffusers");
  EXPECT_TRUE(c.upsampling.enabled);
  EXPECT_FALSE(c.upsampling.temperature.has_value());  // the bundle's (upstream's 0.15)
  EXPECT_FALSE(c.upsampling.max_new_tokens.has_value());
  vars["DG_FLUX2_ENHANCER_MODE"] = "Diffusers";
  vars["DG_FLUX2_UPSAMPLE_TEMPERATURE"] = "0.4";
  vars["DG_FLUX2_UPSAMPLE_MAX_TOKENS"] = "64";
  c = enhancer_config(o, env);
  EXPECT_DOUBLE_EQ(*c.upsampling.temperature, 0.4);
  EXPECT_EQ(*c.upsampling.max_new_tokens, 64);
  auto usage = [&] { return usage_error(o, env); };
  for (const char* bad : {"0", "-1", "2.5", "warm"}) {
    vars["DG_FLUX2_UPSAMPLE_TEMPERATURE"] = bad;
    EXPECT_NE(usage().find("DG_FLUX2_UPSAMPLE_TEMPERATURE"), std::string::npos) << bad;
  }
  vars.erase("DG_FLUX2_UPSAMPLE_TEMPERATURE");
  for (const char* bad : {"0", "1.5", "100000", "many"}) {
    vars["DG_FLUX2_UPSAMPLE_MAX_TOKENS"] = bad;
    EXPECT_NE(usage().find("DG_FLUX2_UPSAMPLE_MAX_TOKENS"), std::string::npos) << bad;
  }
}

TEST(Enhancer, DebugLogHasRequestReplyAndOutcomeButNotTheKey) {
  dg::test::TempDir d;
  HttpServer server;
  server.set_handler([](const HttpRequest&, int) {
    return HttpResponse{200, chat_reply("{\"Rewritten\": \"done\"}"), {}, 0};
  });
  EnhancerConfig c = config_for(server, "qwen_image_edit");
  c.debug = true;
  c.debug_dir = d.path;
  PromptEnhancer(c).enhance(7, "original text", {img(4, 4)});
  const std::string log = dg::test::read_text(d / "prompt_enhancer/7.log");
  EXPECT_NE(log.find("Authorization: Bearer ***"), std::string::npos);
  EXPECT_NE(log.find("original text"), std::string::npos);
  EXPECT_NE(log.find("\\\"Rewritten\\\": \\\"done\\\""), std::string::npos) << log;
  EXPECT_NE(log.find("status: ok"), std::string::npos);
  EXPECT_NE(log.find("characters)"), std::string::npos);  // image payloads summarised
  EXPECT_EQ(log.find(kKey), std::string::npos);
}
