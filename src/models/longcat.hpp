#pragma once
// LongCat prompt handling and sizing (src/models/longcat.cpp), exposed for the engine tests.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dg {

class Tokenizer;

/// The prompt split into (text, quoted) spans as upstream's split_quotation does.
std::vector<std::pair<std::string, bool>> longcat_split_quotation(const std::string& prompt);

/// The user tokens: plain spans tokenised whole, quoted spans one character at a time.
std::vector<int32_t> longcat_prompt_tokens(const Tokenizer& tokenizer, const std::string& prompt);

/// calculate_dimensions(target_area, ratio) rounded up to multiples of 16, as (width, height).
std::pair<int, int> longcat_dimensions(double target_area, double ratio);

}  // namespace dg
