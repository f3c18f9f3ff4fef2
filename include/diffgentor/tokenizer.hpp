#pragma once
/// A tokenizer that reads Hugging Face `tokenizer.json` files. Byte-level BPE (Qwen2/2.5-VL, Qwen3,
/// CLIP): added tokens split out first (leftmost-longest), the normalizer
/// (NFC/NFKC/NFD/NFKD, Lowercase, Replace, Strip, Sequence), the pre-tokenizer (Split with its
/// regex run by Oniguruma, ByteLevel, Sequence), BPE merges by rank (with ignore_merges and
/// end_of_word_suffix), and the post-processor's special tokens when asked for. Unigram (T5): the
/// Precompiled charsmap normalizer, Metaspace (with its "first" prepend scheme), Viterbi over the
/// pieces (unigram.hpp) — native, because Debian's libsentencepiece carries its own protobuf, which
/// clashes with libtorch's in one process.
/// Decoding (ids -> text) implements the ByteLevel decoder (the byte-level BPE tokenizers: Tekken, Qwen).
/// Pinned by tests/data/tokenizers/<name>/cases.jsonl (ids from HF tokenizers) and
/// tests/data/tokenizers/tekken/decode_cases.jsonl (text from HF tokenizers' decode).
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace dg {

struct TokenizerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Tokenizer {
 public:
  /// Loads a tokenizer.json. Throws TokenizerError naming the file and the unsupported or missing field.
  static Tokenizer from_file(const std::string& path);
  static Tokenizer from_json(const nlohmann::json& j, const std::string& origin);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  /// Token ids of `text`; `add_special_tokens` applies the post-processor's template (BOS/EOS).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;

  /// `padding="max_length", truncation=True` as the pipelines call it: the text's tokens truncated on
  /// the right so that they fit with the post-processor's special tokens (CLIP: BOS + 75 + EOS; T5:
  /// 511 + `</s>`), then right-padded with `pad_id`; the mask is 1 for real tokens.
  struct Padded {
    std::vector<int32_t> ids;
    std::vector<int32_t> attention_mask;
  };
  Padded encode_padded(std::string_view text, std::size_t max_length, int32_t pad_id) const;

  /// Text of `ids` as huggingface/tokenizers' `Tokenizer.decode` gives it: every id's token string (vocabulary
  /// or added token; unknown ids are dropped, special added tokens too when `skip_special_tokens`) through the
  /// decoder — ByteLevel: each character back to its byte (a token with a character outside the byte map
  /// contributes its own UTF-8), the bytes read as UTF-8 with each maximal invalid subsequence replaced by
  /// U+FFFD. `clean_up_tokenization_spaces` then applies transformers' `clean_up_tokenization` (" ." -> "."
  /// and the like). Throws TokenizerError for a decoder other than ByteLevel.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens,
                     bool clean_up_tokenization_spaces = false) const;

  /// Id of a vocabulary entry or added token.
  std::optional<int32_t> token_to_id(std::string_view token) const;
  /// The id's token string ("" when unknown).
  std::string id_to_token(int32_t id) const;
  std::size_t vocab_size() const;

 private:
  Tokenizer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dg
