#pragma once
// The enhancers' system prompts (written for diffgentor).
#include <string>

namespace dg::prompts {

const std::string& qwen_image_edit();
const std::string& glm_image_english();
const std::string& glm_image_chinese();
const std::string& flux2_edit();
const std::string& flux2_generate();

}  // namespace dg::prompts
