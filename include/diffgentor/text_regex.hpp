#pragma once
/// Text helpers for tokenizers: an Oniguruma regex (the engine HF tokenizers uses, Ruby syntax,
/// UTF-8, so the patterns in tokenizer.json run verbatim) and Unicode normalisation via utf8proc.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dg {

class Regex {
 public:
  /// Throws std::runtime_error with Oniguruma's message when the pattern does not compile.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  /// Byte ranges [begin, end) of every non-overlapping match, left to right (empty matches skipped).
  std::vector<std::pair<std::size_t, std::size_t>> find_all(std::string_view text) const;

 private:
  void* regex_ = nullptr;  // OnigRegex
};

/// Escapes a literal string for use inside a pattern.
std::string regex_escape(std::string_view literal);

enum class NormalForm { NFC, NFD, NFKC, NFKD };
/// Unicode normalisation; invalid UTF-8 is returned unchanged.
std::string normalize_unicode(std::string_view text, NormalForm form);
/// Per-code-point lower-casing.
std::string lowercase_unicode(std::string_view text);

/// GPT-2's byte-to-unicode map: the UTF-8 text of the code point standing for byte b.
const std::string& byte_to_unicode(unsigned char b);

}  // namespace dg
