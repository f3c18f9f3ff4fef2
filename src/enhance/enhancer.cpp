#include "diffgentor/enhancer.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "diffgentor/fs.hpp"
#include "diffgentor/http.hpp"
#include "diffgentor/image_io.hpp"
#include "diffgentor/manifest.hpp"
#include "diffgentor/resize.hpp"
#include "prompts.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace dg {

namespace {

std::string env_or(const EnvLookup& env, const char* name, const std::string& fallback) {
  const char* v = env(name);
  return v && *v ? std::string(v) : fallback;
}

// A number in (lo, hi] (lo excluded, so a temperature of 0 is refused), or an integer in [lo, hi].
double parse_number(const std::string& text, const char* name, double lo, double hi, bool integer) {
  try {
    std::size_t used = 0;
    const double v = integer ? static_cast<double>(std::stoll(text, &used)) : std::stod(text, &used);
    if (used == text.size() && (integer ? v >= lo : v > lo) && v <= hi) return v;
  } catch (const std::exception&) {
  }
  throw UsageError(integer ? fmt::format("{} '{}': expected a whole number in {}..{}", name, text, lo, hi)
                           : fmt::format("{} '{}': expected a number above {} and at most {}", name, text, lo, hi));
}

bool truthy(const std::string& v) {
  std::string s = v;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s == "1" || s == "true" || s == "yes" || s == "on";
}

}  // namespace

EnhancerConfig enhancer_config(const EditOptions& o, const EnvLookup& env) {
  EnhancerConfig c;
  c.type = o.prompt_enhance_type.value_or("");
  if (c.type == "flux2") {
    c.flux2_mode = env_or(env, "DG_FLUX2_ENHANCER_MODE", "diffusers");
    std::transform(c.flux2_mode.begin(), c.flux2_mode.end(), c.flux2_mode.begin(),
                   [](unsigned char ch) { return std::tolower(ch); });
    if (c.flux2_mode != "api" && c.flux2_mode != "diffusers")
      throw UsageError(fmt::format("DG_FLUX2_ENHANCER_MODE='{}': expected api or diffusers", c.flux2_mode));
    if (c.flux2_mode == "diffusers") {  // FLUX.2-dev's own Mistral, in the model stage: no API settings apply
      c.upsampling.enabled = true;
      const std::string t = env_or(env, "DG_FLUX2_UPSAMPLE_TEMPERATURE", "");
      if (!t.empty()) c.upsampling.temperature = parse_number(t, "DG_FLUX2_UPSAMPLE_TEMPERATURE", 0.0, 2.0, false);
      const std::string n = env_or(env, "DG_FLUX2_UPSAMPLE_MAX_TOKENS", "");
      if (!n.empty())
        c.upsampling.max_new_tokens =
            static_cast<int>(parse_number(n, "DG_FLUX2_UPSAMPLE_MAX_TOKENS", 1.0, 8192.0, true));
      return c;
    }
  }
  c.client.api_key = env_or(env, "DG_PROMPT_ENHANCER_API_KEY", "");
  if (c.client.api_key.empty())
    throw UsageError(fmt::format("--prompt_enhance_type {} needs an API key: set DG_PROMPT_ENHANCER_API_KEY", c.type));
  c.client.api_base = env_or(env, "DG_PROMPT_ENHANCER_API_BASE", "https://api.openai.com/v1");
  if (!is_url(c.client.api_base))
    throw UsageError(fmt::format("DG_PROMPT_ENHANCER_API_BASE '{}': only http:// and https:// bases are allowed",
                                 c.client.api_base));
  c.client.timeout_s = o.timeout;
  c.client.max_retries = o.api_max_retries;
  c.client.retry_delay_s = o.retry_delay;
  c.model = env_or(env, "DG_PROMPT_ENHANCER_MODEL", "gpt-4o");
  const std::string t = env_or(env, "DG_PROMPT_ENHANCER_TEMPERATURE", "0.15");
  try {
    std::size_t used = 0;
    c.temperature = std::stod(t, &used);
    if (used != t.size() || c.temperature < 0 || c.temperature > 2) throw std::invalid_argument("range");
  } catch (const std::exception&) {
    throw UsageError(fmt::format("DG_PROMPT_ENHANCER_TEMPERATURE '{}': expected a number in 0..2", t));
  }
  c.debug = truthy(env_or(env, "DG_PROMPT_ENHANCER_DEBUG", ""));
  c.debug_dir = env_or(env, "DG_PROMPT_ENHANCER_DEBUG_DIR", o.output_dir);
  c.concurrency = o.enhance_workers;
  return c;
}

bool contains_cjk(const std::string& text) {
  for (std::size_t i = 0; i + 2 < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0xE3 || c > 0xE9) continue;  // U+3000..U+9FFF are 3-byte sequences starting E3..E9
    const uint32_t cp = ((c & 0x0F) << 12) | ((static_cast<unsigned char>(text[i + 1]) & 0x3F) << 6) |
                        (static_cast<unsigned char>(text[i + 2]) & 0x3F);
    if ((cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF)) return true;
  }
  return false;
}

namespace {

std::string strip_fences(std::string s) {
  auto trim = [](std::string& x) {
    const auto b = x.find_first_not_of(" \t\r\n");
    const auto e = x.find_last_not_of(" \t\r\n");
    x = b == std::string::npos ? "" : x.substr(b, e - b + 1);
  };
  trim(s);
  const auto open = s.find("```");
  if (open != std::string::npos) {
    const auto line_end = s.find('\n', open);
    const auto close = line_end == std::string::npos ? std::string::npos : s.find("```", line_end);
    if (close != std::string::npos) s = s.substr(line_end + 1, close - line_end - 1);
  }
  trim(s);
  return s;
}

}  // namespace

std::string parse_enhancer_reply(const std::string& body, bool expect_json) {
  const json reply = json::parse(body, nullptr, false);
  if (reply.is_discarded()) throw std::runtime_error("the API reply is not JSON");
  const json* content = nullptr;
  if (reply.contains("choices") && reply["choices"].is_array() && !reply["choices"].empty()) {
    const json& choice = reply["choices"][0];
    if (choice.contains("message") && choice["message"].contains("content")) content = &choice["message"]["content"];
  }
  if (!content || !content->is_string()) throw std::runtime_error("the API reply has no choices[0].message.content");
  std::string text = strip_fences(content->get<std::string>());
  if (expect_json) {
    const auto open = text.find('{');
    const auto close = text.rfind('}');
    if (open == std::string::npos || close == std::string::npos || close < open)
      throw std::runtime_error("the model's answer holds no JSON object");
    const json obj = json::parse(text.substr(open, close - open + 1), nullptr, false);
    if (obj.is_discarded() || !obj.is_object())
      throw std::runtime_error("the model's answer holds no valid JSON object");
    std::string found;
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      std::string key = it.key();
      std::transform(key.begin(), key.end(), key.begin(), [](unsigned char ch) { return std::tolower(ch); });
      if (key == "rewritten" && it.value().is_string()) found = it.value().get<std::string>();
    }
    text = strip_fences(found);
    if (text.empty()) throw std::runtime_error("the model's JSON has no non-empty \"Rewritten\" field");
  } else if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
    text = text.substr(1, text.size() - 2);
  }
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) throw std::runtime_error("the model's answer is empty");
  return text;
}

struct PromptEnhancer::Gate {
  std::mutex mu;
  std::condition_variable cv;
  int free = 0;
};

PromptEnhancer::PromptEnhancer(EnhancerConfig config)
    : config_(std::move(config)), client_(config_.client), gate_(std::make_shared<Gate>()) {
  gate_->free = std::max(1, config_.concurrency);
}

std::string PromptEnhancer::request_body(const std::string& instruction, const std::vector<Image>& images) const {
  const bool with_images = config_.type == "qwen_image_edit" || (config_.type == "flux2" && !images.empty());
  const std::string& system = config_.type == "qwen_image_edit" ? prompts::qwen_image_edit()
                              : config_.type == "glm_image" ? (contains_cjk(instruction) ? prompts::glm_image_chinese()
                                                                                         : prompts::glm_image_english())
                              : images.empty()              ? prompts::flux2_generate()
                                                            : prompts::flux2_edit();
  json user = json::array();
  if (with_images) {
    for (const Image& img : images) {
      // Longest side capped at 2000 px (Pillow-exact LANCZOS), sent as a PNG data URL.
      const double scale = std::min(1.0, 2000.0 / std::max(img.width, img.height));
      const Image sent = scale < 1.0 ? resize_pil(img, std::max(1, int(img.width * scale + 0.5)),
                                                  std::max(1, int(img.height * scale + 0.5)), ResampleFilter::Lanczos)
                                     : img;
      user.push_back({{"type", "image_url"},
                      {"image_url", {{"url", "data:image/png;base64," + base64_encode(encode_image(sent, ".png"))}}}});
    }
  }
  user.push_back({{"type", "text"}, {"text", instruction}});
  json body = {{"model", config_.model},
               {"temperature", config_.temperature},
               {"messages", {{{"role", "system"}, {"content", system}}, {{"role", "user"}, {"content", user}}}}};
  if (config_.type == "qwen_image_edit") body["response_format"] = {{"type", "json_object"}};
  return body.dump();
}

EnhanceOutcome PromptEnhancer::enhance(int64_t index, const std::string& instruction,
                                       const std::vector<Image>& images) const {
  const std::string body = request_body(instruction, images);
  std::string raw;
  EnhanceOutcome out{instruction, "ok"};
  {
    std::unique_lock<std::mutex> lock(gate_->mu);
    gate_->cv.wait(lock, [&] { return gate_->free > 0; });
    --gate_->free;
  }
  try {
    raw = client_.post(body);
    out.instruction = parse_enhancer_reply(raw, config_.type == "qwen_image_edit");
  } catch (const std::exception& e) {
    out.instruction = instruction;
    out.status = redact(fmt::format("fallback: {}", e.what()), config_.client.api_key);
    spdlog::warn("index {}: prompt enhancement failed, using the original instruction: {}", index,
                 out.status.substr(10));
  }
  {
    std::lock_guard<std::mutex> lock(gate_->mu);
    ++gate_->free;
  }
  gate_->cv.notify_one();
  if (config_.debug) {
    // The request without the image payloads (their sizes instead) and with the key redacted.
    json shown = json::parse(body);
    for (auto& m : shown["messages"])
      if (m["content"].is_array())
        for (auto& part : m["content"])
          if (part.contains("image_url")) {
            const std::string url = part["image_url"]["url"];
            part["image_url"]["url"] = fmt::format("data:image/png;base64,...({} characters)", url.size());
          }
    const std::string log = fmt::format(
        "POST {}\nAuthorization: Bearer ***\n\n[request]\n{}\n\n[reply]\n{}\n\n[outcome]\nstatus: {}\ninstruction: {}\n"
        "enhanced: {}\n",
        client_.endpoint(), shown.dump(2), raw.empty() ? "<none>" : raw, out.status, instruction, out.instruction);
    try {
      write_file_atomic((fs::path(config_.debug_dir) / "prompt_enhancer" / fmt::format("{}.log", index)).string(),
                        redact(log, config_.client.api_key));
    } catch (const std::exception& e) {
      spdlog::warn("index {}: cannot write the prompt-enhancer debug log: {}", index, e.what());
    }
  }
  return out;
}

}  // namespace dg
