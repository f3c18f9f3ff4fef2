#pragma once
/// The pieces a Unigram tokenizer.json (T5) needs beyond the BPE machinery: sentencepiece's
/// precompiled character map (a Darts double-array trie plus a pool of replacement strings) applied
/// per grapheme cluster as HF tokenizers' `Precompiled` normalizer does, and the Unigram model's
/// Viterbi segmentation with unknown-character handling.
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dg {

class PrecompiledCharsmap {
 public:
  /// `blob` is the base64-decoded `precompiled_charsmap`. Throws std::runtime_error when malformed.
  explicit PrecompiledCharsmap(const std::string& blob);
  std::string normalize(std::string_view text) const;

 private:
  /// The replacement for the shortest key that prefixes `chunk`, or nullptr.
  const char* transform(std::string_view chunk) const;
  std::vector<uint32_t> trie_;
  std::string pool_;
};

class UnigramModel {
 public:
  /// `pieces` with their log-probabilities, ids = positions; `unk_id` for characters no piece covers.
  UnigramModel(std::vector<std::pair<std::string, double>> pieces, int32_t unk_id);
  /// Best segmentation of one pre-tokenized word; consecutive unknowns are fused into one unk.
  void encode(std::string_view word, std::vector<int32_t>& ids) const;

 private:
  std::unordered_map<std::string, std::pair<int32_t, double>> index_;
  std::size_t max_piece_bytes_ = 1;
  int32_t unk_id_ = 0;
  double unk_score_ = -10.0;
};

std::string base64_decode(std::string_view text);

}  // namespace dg
