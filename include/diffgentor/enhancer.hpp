#pragma once
/// Prompt enhancement (docs/enhancement.md): `--prompt_enhance_type qwen_image_edit|glm_image|flux2`
/// rewrites each row's instruction with an LLM over an OpenAI-compatible API before the model sees it.
/// Runs in the runner's prepare stage, several requests at a time, so its latency is hidden from the
/// model stage. A failure falls back to the original instruction, is logged as a warning and recorded
/// in results.csv (`enhance_status`), never silently. flux2's default mode instead rewrites inside the model
/// stage with FLUX.2-dev's own Mistral (PromptUpsampling, src/models/flux2_upsampler.hpp).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "diffgentor/chat_client.hpp"
#include "diffgentor/image.hpp"
#include "diffgentor/options.hpp"
#include "diffgentor/pipeline.hpp"
#include "diffgentor/selection.hpp"

namespace dg {

/// Settings from the DG_PROMPT_ENHANCER_* variables and the API flags.
struct EnhancerConfig {
  std::string type;  ///< qwen_image_edit | glm_image | flux2
  ChatClientOptions client;
  std::string model = "gpt-4o";
  double temperature = 0.15;
  bool debug = false;
  std::string debug_dir;        ///< logs go to <debug_dir>/prompt_enhancer/<index>.log
  std::string flux2_mode;       ///< flux2 only: "api" or "diffusers" (the bundle's own Mistral, in the model stage)
  PromptUpsampling upsampling;  ///< flux2 in diffusers mode: enabled, with the DG_FLUX2_UPSAMPLE_* overrides
  int concurrency = 4;          ///< requests in flight
};

/// Reads the configuration for `options.prompt_enhance_type`. Throws UsageError at start-up for a
/// missing API key, a base that is not http(s), a bad temperature or token count, or an unknown flux2 mode. In
/// flux2's diffusers mode no API setting is read (nothing goes over the network).
EnhancerConfig enhancer_config(const EditOptions& options, const EnvLookup& env);

struct EnhanceOutcome {
  std::string instruction;  ///< the enhanced text, or the original on fallback
  std::string status;       ///< "ok" or "fallback: <reason>"
  bool ok() const { return status == "ok"; }
};

class PromptEnhancer {
 public:
  explicit PromptEnhancer(EnhancerConfig config);
  /// Thread-safe; at most `concurrency` requests run at once across threads.
  EnhanceOutcome enhance(int64_t index, const std::string& instruction, const std::vector<Image>& images) const;
  const EnhancerConfig& config() const { return config_; }
  /// The JSON request body for a row (exposed for tests).
  std::string request_body(const std::string& instruction, const std::vector<Image>& images) const;

 private:
  EnhancerConfig config_;
  ChatClient client_;
  struct Gate;
  std::shared_ptr<Gate> gate_;
};

/// Extracts the rewritten instruction from a chat-completions reply body: the first choice's message
/// content, code fences stripped; for JSON enhancers the `Rewritten` field of the first JSON object in
/// it (prose around it is ignored). Throws std::runtime_error with the reason for an unusable reply.
std::string parse_enhancer_reply(const std::string& body, bool expect_json);

/// True when the text contains CJK ideographs (glm_image answers in Chinese then).
bool contains_cjk(const std::string& text);

}  // namespace dg
