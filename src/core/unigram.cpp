// Ports of the behaviour of HF tokenizers' Precompiled normalizer (spm_precompiled: Darts trie,
// grapheme-wise replacement) and Unigram model (Viterbi over vocabulary pieces, unknown penalty 10
// below the lowest score, fused unknowns).
#include "diffgentor/unigram.hpp"

#include <utf8proc.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace dg {

std::string base64_decode(std::string_view text) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = val(c);
    if (v < 0) continue;  // padding, whitespace
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

namespace {

bool has_leaf(uint32_t u) { return ((u >> 8) & 1) == 1; }
uint32_t value_of(uint32_t u) { return u & ((1u << 31) - 1); }
uint32_t label_of(uint32_t u) { return u & ((1u << 31) | 0xFF); }
uint32_t offset_of(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

std::size_t utf8_len(unsigned char c) { return c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1; }

}  // namespace

PrecompiledCharsmap::PrecompiledCharsmap(const std::string& blob) {
  if (blob.size() < 4) throw std::runtime_error("precompiled_charsmap is too short");
  uint32_t trie_bytes;
  std::memcpy(&trie_bytes, blob.data(), 4);
  if (trie_bytes % 4 != 0 || 4 + static_cast<std::size_t>(trie_bytes) > blob.size())
    throw std::runtime_error("precompiled_charsmap has a bad trie size");
  trie_.resize(trie_bytes / 4);
  std::memcpy(trie_.data(), blob.data() + 4, trie_bytes);
  pool_ = blob.substr(4 + trie_bytes);
}

const char* PrecompiledCharsmap::transform(std::string_view chunk) const {
  std::size_t node = 0;
  uint32_t unit = trie_.at(0);
  node ^= offset_of(unit);
  for (unsigned char c : chunk) {
    if (c == 0) break;
    node ^= c;
    if (node >= trie_.size()) return nullptr;
    unit = trie_[node];
    if (label_of(unit) != c) return nullptr;
    node ^= offset_of(unit);
    if (has_leaf(unit)) {  // the first (shortest) match decides, as spm_precompiled does
      const uint32_t index = value_of(trie_.at(node));
      return index < pool_.size() ? pool_.c_str() + index : nullptr;
    }
  }
  return nullptr;
}

std::string PrecompiledCharsmap::normalize(std::string_view text) const {
  std::string out;
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  const auto n = static_cast<utf8proc_ssize_t>(text.size());
  utf8proc_ssize_t pos = 0;
  int32_t state = 0;
  while (pos < n) {
    // One extended grapheme cluster [pos, end).
    utf8proc_int32_t prev = -1, cp = 0;
    utf8proc_ssize_t end = pos;
    while (end < n) {
      const auto len = utf8proc_iterate(p + end, n - end, &cp);
      if (len <= 0) {  // invalid byte: a cluster of its own
        if (end == pos) end += 1;
        break;
      }
      if (prev >= 0 && utf8proc_grapheme_break_stateful(prev, cp, &state)) break;
      prev = cp;
      end += len;
    }
    const std::string_view cluster = text.substr(static_cast<std::size_t>(pos), static_cast<std::size_t>(end - pos));
    const char* whole = cluster.size() < 6 ? transform(cluster) : nullptr;
    if (whole) {
      out += whole;
    } else {
      for (std::size_t k = 0; k < cluster.size();) {
        const std::size_t len = std::min(utf8_len(static_cast<unsigned char>(cluster[k])), cluster.size() - k);
        const std::string_view ch = cluster.substr(k, len);
        const char* rep = transform(ch);
        out += rep ? std::string_view(rep) : ch;
        k += len;
      }
    }
    pos = end;
    state = 0;
  }
  return out;
}

UnigramModel::UnigramModel(std::vector<std::pair<std::string, double>> pieces, int32_t unk_id) : unk_id_(unk_id) {
  double min_score = std::numeric_limits<double>::max();
  for (std::size_t k = 0; k < pieces.size(); ++k) {
    auto& [piece, score] = pieces[k];
    index_.emplace(piece, std::make_pair(static_cast<int32_t>(k), score));
    max_piece_bytes_ = std::max(max_piece_bytes_, piece.size());
    min_score = std::min(min_score, score);
  }
  unk_score_ = min_score - 10.0;
}

void UnigramModel::encode(std::string_view word, std::vector<int32_t>& ids) const {
  const std::size_t n = word.size();
  struct Best {
    double score = -std::numeric_limits<double>::infinity();
    std::size_t start = 0;
    int32_t id = -1;
  };
  std::vector<Best> best(n + 1);
  best[0].score = 0;
  for (std::size_t pos = 0; pos < n; pos += 0) {
    const std::size_t char_len = std::min(utf8_len(static_cast<unsigned char>(word[pos])), n - pos);
    if (best[pos].id != -1 || pos == 0) {
      bool single = false;
      for (std::size_t len = 1; len <= max_piece_bytes_ && pos + len <= n; ++len) {
        auto it = index_.find(std::string(word.substr(pos, len)));
        if (it == index_.end()) continue;
        if (len == char_len) single = true;
        const double s = best[pos].score + it->second.second;
        if (best[pos + len].id == -1 || s > best[pos + len].score) best[pos + len] = {s, pos, it->second.first};
      }
      if (!single) {
        const double s = best[pos].score + unk_score_;
        if (best[pos + char_len].id == -1 || s > best[pos + char_len].score) best[pos + char_len] = {s, pos, unk_id_};
      }
    }
    pos += char_len;
  }
  std::vector<int32_t> rev;
  for (std::size_t end = n; end > 0; end = best[end].start) {
    const int32_t id = best[end].id;
    if (!(id == unk_id_ && !rev.empty() && rev.back() == unk_id_)) rev.push_back(id);  // fuse unknowns
  }
  ids.insert(ids.end(), rev.rbegin(), rev.rend());
}

}  // namespace dg
