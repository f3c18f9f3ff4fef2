// Byte-level BPE over HF tokenizer.json, following the order of operations of huggingface/tokenizers
// (added-token split, normalizer, pre-tokenizer, model, post-processor); facts from
// docs/tokenizers.md, "Byte-level BPE".
#include "diffgentor/tokenizer.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "diffgentor/text_regex.hpp"
#include "diffgentor/unigram.hpp"

using nlohmann::json;

namespace dg {

namespace {

// GPT-2's ByteLevel pre-tokenizer regex (used when ByteLevel.use_regex is true).
const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false, normalized = false, lstrip = false, rstrip = false, single_word = false;
};

// A pre-tokenizer step: turns each piece into zero or more pieces.
using PieceFn = std::function<void(const std::string&, std::vector<std::string>&)>;
using TextFn = std::function<std::string(const std::string&)>;

// A tokenizer.json pattern object: {"Regex": "..."} or {"String": "..."} (a literal).
std::shared_ptr<Regex> regex_of(const json& pattern) {
  return std::make_shared<Regex>(pattern.contains("Regex") ? pattern["Regex"].get<std::string>()
                                                           : regex_escape(pattern.at("String").get<std::string>()));
}

// Byte length of the Unicode White_Space character at s[i] (UTF-8), 0 if there is none.
std::size_t whitespace_width(const std::string& s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  const unsigned b0 = byte(i);
  if ((b0 >= 0x09 && b0 <= 0x0D) || b0 == 0x20) return 1;
  if (b0 == 0xC2 && (byte(i + 1) == 0x85 || byte(i + 1) == 0xA0)) return 2;  // U+0085, U+00A0
  if (b0 == 0xE1 && byte(i + 1) == 0x9A && byte(i + 2) == 0x80) return 3;    // U+1680
  if (b0 == 0xE2 && byte(i + 1) == 0x80) {                                   // U+2000-200A, 2028, 2029, 202F
    const unsigned b2 = byte(i + 2);
    if ((b2 >= 0x80 && b2 <= 0x8A) || b2 == 0xA8 || b2 == 0xA9 || b2 == 0xAF) return 3;
  }
  if (b0 == 0xE2 && byte(i + 1) == 0x81 && byte(i + 2) == 0x9F) return 3;  // U+205F
  if (b0 == 0xE3 && byte(i + 1) == 0x80 && byte(i + 2) == 0x80) return 3;  // U+3000
  return 0;
}

}  // namespace

struct Tokenizer::Impl {
  std::string origin;
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;
  std::map<std::pair<int32_t, int32_t>, std::pair<int32_t, int32_t>> merges;  // pair -> (rank, merged id)
  std::vector<AddedToken> added;
  // Indices into `added` by first byte: GLM-Image's tokenizer has 16.5k added tokens, and a scan of all of them at
  // every position would cost milliseconds per prompt.
  std::array<std::vector<std::size_t>, 256> added_by_byte;
  bool ignore_merges = false, byte_level = false, byte_fallback = false, fuse_unk = false;
  std::string decoder;              // the decoder's type ("" when there is none)
  std::vector<bool> special_by_id;  // added tokens marked special, by id
  std::string end_of_word_suffix;
  std::optional<int32_t> unk_id;
  std::vector<TextFn> normalizers;
  std::vector<PieceFn> pre_tokenizers;
  std::vector<int32_t> prefix_ids, suffix_ids;  // post-processor template around a single sequence
  std::shared_ptr<UnigramModel> unigram;        // set for Unigram models (T5), else BPE
  // Metaspace pre-tokenizer (T5): spaces become `replacement`; the prefix depends on where the text
  // segment starts in the input ("first": only a segment at offset 0), then it splits before each
  // replacement character.
  bool metaspace = false, metaspace_split = true;
  std::string metaspace_replacement = "\u2581", metaspace_scheme = "always";

  [[noreturn]] void fail(const std::string& what) const { throw TokenizerError(origin + ": " + what); }

  void load_normalizer(const json& n) {
    if (n.is_null()) return;
    const std::string type = n.value("type", "");
    if (type == "Sequence") {
      for (const auto& sub : n.at("normalizers")) load_normalizer(sub);
    } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
      const NormalForm f = type == "NFC"    ? NormalForm::NFC
                           : type == "NFD"  ? NormalForm::NFD
                           : type == "NFKC" ? NormalForm::NFKC
                                            : NormalForm::NFKD;
      normalizers.push_back([f](const std::string& s) { return normalize_unicode(s, f); });
    } else if (type == "Lowercase") {
      normalizers.push_back([](const std::string& s) { return lowercase_unicode(s); });
    } else if (type == "Strip") {
      const bool left = n.value("strip_left", true), right = n.value("strip_right", true);
      normalizers.push_back([left, right](const std::string& s) {
        std::size_t b = 0, e = s.size();
        while (left && b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
        while (right && e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
        return s.substr(b, e - b);
      });
    } else if (type == "Precompiled") {
      auto map = std::make_shared<PrecompiledCharsmap>(base64_decode(n.at("precompiled_charsmap").get<std::string>()));
      normalizers.push_back([map](const std::string& s) { return map->normalize(s); });
    } else if (type == "Replace") {
      auto re = regex_of(n.at("pattern"));
      const std::string content = n.at("content");
      normalizers.push_back([re, content](const std::string& s) {
        std::string out;
        std::size_t last = 0;
        for (auto [b, e] : re->find_all(s)) out += s.substr(last, b - last) + content, last = e;
        return out + s.substr(last);
      });
    } else {
      fail("normalizer type '" + type + "' is not supported");
    }
  }

  void load_pre_tokenizer(const json& p) {
    if (p.is_null()) return;
    const std::string type = p.value("type", "");
    if (type == "Sequence") {
      for (const auto& sub : p.at("pretokenizers")) load_pre_tokenizer(sub);
    } else if (type == "Split") {
      auto re = regex_of(p.at("pattern"));
      const std::string behavior = p.value("behavior", "Isolated");
      const bool invert = p.value("invert", false);
      if (behavior != "Isolated" && behavior != "Removed") fail("Split behavior '" + behavior + "' is not supported");
      const bool keep_matches = behavior == "Isolated" || invert, keep_gaps = behavior == "Isolated" || !invert;
      pre_tokenizers.push_back([re, keep_matches, keep_gaps](const std::string& s, std::vector<std::string>& out) {
        std::size_t last = 0;
        for (auto [b, e] : re->find_all(s)) {
          if (keep_gaps && b > last) out.push_back(s.substr(last, b - last));
          if (keep_matches) out.push_back(s.substr(b, e - b));
          last = e;
        }
        if (keep_gaps && last < s.size()) out.push_back(s.substr(last));
      });
    } else if (type == "ByteLevel") {
      byte_level = true;
      const bool prefix = p.value("add_prefix_space", false), use_regex = p.value("use_regex", true);
      auto re = use_regex ? std::make_shared<Regex>(kGpt2Pattern) : nullptr;
      pre_tokenizers.push_back([prefix, re](const std::string& s, std::vector<std::string>& out) {
        const std::string text = prefix && (s.empty() || s[0] != ' ') ? " " + s : s;
        std::vector<std::string> parts;
        if (re) {
          std::size_t last = 0;
          for (auto [b, e] : re->find_all(text)) {
            if (b > last) parts.push_back(text.substr(last, b - last));
            parts.push_back(text.substr(b, e - b));
            last = e;
          }
          if (last < text.size()) parts.push_back(text.substr(last));
        } else {
          parts.push_back(text);
        }
        for (const auto& part : parts) {
          std::string mapped;
          for (unsigned char c : part) mapped += byte_to_unicode(c);
          if (!mapped.empty()) out.push_back(std::move(mapped));
        }
      });
    } else if (type == "WhitespaceSplit") {
      // Splits on Unicode White_Space and drops it (tokenizers' WhitespaceSplit, char::is_whitespace).
      pre_tokenizers.push_back([](const std::string& s, std::vector<std::string>& out) {
        std::size_t start = 0, i = 0;
        while (i < s.size()) {
          const std::size_t width = whitespace_width(s, i);
          if (width == 0) {
            ++i;
            continue;
          }
          if (i > start) out.push_back(s.substr(start, i - start));
          i += width;
          start = i;
        }
        if (start < s.size()) out.push_back(s.substr(start));
      });
    } else if (type == "Metaspace") {
      metaspace = true;
      metaspace_replacement = p.value("replacement", "\u2581");
      metaspace_scheme = p.contains("prepend_scheme") ? p["prepend_scheme"].get<std::string>()
                                                      : (p.value("add_prefix_space", true) ? "always" : "never");
      metaspace_split = p.value("split", true);
    } else {
      fail("pre_tokenizer type '" + type + "' is not supported");
    }
  }

  void load_post_processor(const json& p) {
    if (p.is_null()) return;
    const std::string type = p.value("type", "");
    if (type == "Sequence") {
      for (const auto& sub : p.at("processors")) load_post_processor(sub);
    } else if (type == "ByteLevel") {
      // adds no tokens
    } else if (type == "TemplateProcessing") {
      bool after = false;
      for (const auto& item : p.at("single")) {
        if (item.contains("Sequence")) {
          after = true;
        } else {
          const std::string tok = item.at("SpecialToken").at("id");
          const json& ids = p.at("special_tokens").at(tok).at("ids");
          for (const auto& id : ids) (after ? suffix_ids : prefix_ids).push_back(id.get<int32_t>());
        }
      }
    } else if (type == "RobertaProcessing" || type == "BertProcessing") {
      prefix_ids.push_back(p.at("cls").at(1).get<int32_t>());
      suffix_ids.push_back(p.at("sep").at(1).get<int32_t>());
    } else {
      fail("post_processor type '" + type + "' is not supported");
    }
  }

  void load_unigram(const json& m) {
    if (m.value("byte_fallback", false)) fail("Unigram byte_fallback is not supported");
    std::vector<std::pair<std::string, double>> pieces;
    for (const auto& entry : m.at("vocab")) {
      vocab[entry.at(0).get<std::string>()] = static_cast<int32_t>(pieces.size());
      pieces.emplace_back(entry.at(0).get<std::string>(), entry.at(1).get<double>());
    }
    unigram = std::make_shared<UnigramModel>(std::move(pieces), m.value("unk_id", 0));
  }

  void load_model(const json& m) {
    if (m.value("type", "BPE") == "Unigram") return load_unigram(m);
    if (m.value("type", "BPE") != "BPE") fail("model type '" + m.value("type", "") + "' is not BPE or Unigram");
    for (auto it = m.at("vocab").begin(); it != m.at("vocab").end(); ++it) vocab[it.key()] = it.value().get<int32_t>();
    ignore_merges = m.value("ignore_merges", false);
    byte_fallback = m.value("byte_fallback", false);
    fuse_unk = m.value("fuse_unk", false);
    if (m.contains("end_of_word_suffix") && m["end_of_word_suffix"].is_string())
      end_of_word_suffix = m["end_of_word_suffix"];
    if (m.contains("continuing_subword_prefix") && m["continuing_subword_prefix"].is_string() &&
        !m["continuing_subword_prefix"].get<std::string>().empty())
      fail("model.continuing_subword_prefix is not supported");
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      auto it = vocab.find(m["unk_token"].get<std::string>());
      if (it != vocab.end()) unk_id = it->second;
    }
    int32_t rank = 0;
    for (const auto& merge : m.at("merges")) {
      std::string a, b;
      if (merge.is_array()) {
        a = merge.at(0), b = merge.at(1);
      } else {
        const std::string s = merge;
        const auto sp = s.find(' ', 1);
        if (sp == std::string::npos) fail("merge '" + s + "' has no space");
        a = s.substr(0, sp), b = s.substr(sp + 1);
      }
      auto ia = vocab.find(a), ib = vocab.find(b), iab = vocab.find(a + b);
      if (ia == vocab.end() || ib == vocab.end() || iab == vocab.end())
        fail("merge '" + a + " " + b + "' names a token missing from model.vocab");
      merges.emplace(std::make_pair(ia->second, ib->second), std::make_pair(rank++, iab->second));
    }
  }

  // BPE of one pre-tokenized piece: merge the lowest-ranked adjacent pair (leftmost on ties).
  void bpe(const std::string& piece, std::vector<int32_t>& out) const {
    if (ignore_merges && end_of_word_suffix.empty()) {
      if (auto it = vocab.find(piece); it != vocab.end()) return out.push_back(it->second);
    }
    std::vector<std::string> chars;
    for (std::size_t i = 0; i < piece.size();) {
      std::size_t n = 1;
      const auto c = static_cast<unsigned char>(piece[i]);
      if (c >= 0xF0)
        n = 4;
      else if (c >= 0xE0)
        n = 3;
      else if (c >= 0xC0)
        n = 2;
      chars.push_back(piece.substr(i, n));
      i += n;
    }
    if (!end_of_word_suffix.empty() && !chars.empty()) chars.back() += end_of_word_suffix;
    std::vector<int32_t> word;
    for (const auto& ch : chars) {
      if (auto it = vocab.find(ch); it != vocab.end()) {
        word.push_back(it->second);
      } else if (byte_fallback) {
        for (unsigned char byte : ch) {
          char hex[8];
          std::snprintf(hex, sizeof hex, "<0x%02X>", byte);
          if (auto b = vocab.find(hex); b != vocab.end())
            word.push_back(b->second);
          else if (unk_id)
            word.push_back(*unk_id);
        }
      } else if (unk_id) {
        if (!(fuse_unk && !word.empty() && word.back() == *unk_id)) word.push_back(*unk_id);
      }
    }
    for (;;) {
      int32_t best_rank = std::numeric_limits<int32_t>::max();
      std::size_t best = 0;
      int32_t merged = 0;
      for (std::size_t k = 0; k + 1 < word.size(); ++k) {
        auto it = merges.find({word[k], word[k + 1]});
        if (it != merges.end() && it->second.first < best_rank)
          best_rank = it->second.first, best = k, merged = it->second.second;
      }
      if (best_rank == std::numeric_limits<int32_t>::max()) break;
      word[best] = merged;
      word.erase(word.begin() + static_cast<long>(best) + 1);
    }
    out.insert(out.end(), word.begin(), word.end());
  }

  // Splits `text` into plain segments and added-token ids (leftmost-longest match).
  struct Segment {
    std::string text;
    int32_t id = -1;
    std::size_t offset = 0;  ///< where the segment starts in the text that was split
  };
  std::vector<Segment> split_added(const std::string& text, bool normalized_pass) const {
    std::vector<Segment> out;
    std::size_t start = 0, i = 0;
    auto is_ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    while (i < text.size()) {
      const AddedToken* best = nullptr;
      for (std::size_t k : added_by_byte[static_cast<unsigned char>(text[i])]) {
        const AddedToken& t = added[k];
        if (t.normalized != normalized_pass) continue;
        if (text.compare(i, t.content.size(), t.content) != 0) continue;
        if (t.single_word) {
          const bool left_ok = i == 0 || !std::isalnum(static_cast<unsigned char>(text[i - 1]));
          const std::size_t e = i + t.content.size();
          const bool right_ok = e >= text.size() || !std::isalnum(static_cast<unsigned char>(text[e]));
          if (!left_ok || !right_ok) continue;
        }
        if (!best || t.content.size() > best->content.size()) best = &t;
      }
      if (!best) {
        ++i;
        continue;
      }
      std::size_t seg_end = i, next = i + best->content.size();
      if (best->lstrip)
        while (seg_end > start && is_ws(text[seg_end - 1])) --seg_end;
      if (best->rstrip)
        while (next < text.size() && is_ws(text[next])) ++next;
      if (seg_end > start) out.push_back({text.substr(start, seg_end - start), -1, start});
      out.push_back({"", best->id, i});
      start = i = next;
    }
    if (start < text.size()) out.push_back({text.substr(start), -1, start});
    return out;
  }

  // Spaces to the replacement character, the prefix by scheme, then a split before each replacement.
  std::vector<std::string> apply_metaspace(const std::string& text, bool at_start) const {
    std::string s;
    for (char c : text) s += c == ' ' ? metaspace_replacement : std::string(1, c);
    const bool prepend = metaspace_scheme == "always" || (metaspace_scheme == "first" && at_start);
    if (prepend && s.compare(0, metaspace_replacement.size(), metaspace_replacement) != 0)
      s = metaspace_replacement + s;
    if (!metaspace_split) return {s};
    std::vector<std::string> out;
    std::size_t start = 0;
    for (std::size_t p = s.find(metaspace_replacement, 1); p != std::string::npos;
         p = s.find(metaspace_replacement, p + 1)) {
      if (p > start) out.push_back(s.substr(start, p - start));
      start = p;
    }
    if (start < s.size()) out.push_back(s.substr(start));
    return out;
  }

  void encode_plain(const std::string& raw, std::vector<int32_t>& ids, bool at_start) const {
    std::string text = raw;
    for (const auto& n : normalizers) text = n(text);
    for (const auto& seg : split_added(text, true)) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
        continue;
      }
      std::vector<std::string> pieces{seg.text};
      for (const auto& pre : pre_tokenizers) {
        std::vector<std::string> next;
        for (const auto& p : pieces) pre(p, next);
        pieces = std::move(next);
      }
      if (metaspace) {
        std::vector<std::string> next;
        for (std::size_t k = 0; k < pieces.size(); ++k)
          for (auto& part : apply_metaspace(pieces[k], at_start && seg.offset == 0 && k == 0))
            next.push_back(std::move(part));
        pieces = std::move(next);
      }
      for (const auto& p : pieces) {
        if (p.empty()) continue;
        if (unigram)
          unigram->encode(p, ids);
        else
          bpe(p, ids);
      }
    }
  }
};

Tokenizer::Tokenizer() : impl_(std::make_unique<Impl>()) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TokenizerError(path + ": cannot be opened");
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) throw TokenizerError(path + ": not valid JSON");
  return from_json(j, path);
}

Tokenizer Tokenizer::from_json(const json& j, const std::string& origin) {
  Tokenizer t;
  Impl& m = *t.impl_;
  m.origin = origin;
  try {
    if (!j.contains("model")) m.fail("no 'model' object");
    m.load_model(j.at("model"));
    if (j.contains("added_tokens")) {
      for (const auto& a : j["added_tokens"]) {
        AddedToken tok;
        tok.content = a.at("content");
        tok.id = a.at("id");
        tok.special = a.value("special", false);
        tok.normalized = a.value("normalized", !tok.special);
        tok.lstrip = a.value("lstrip", false);
        tok.rstrip = a.value("rstrip", false);
        tok.single_word = a.value("single_word", false);
        m.added.push_back(tok);
      }
    }
    m.load_normalizer(j.value("normalizer", json()));
    m.load_pre_tokenizer(j.value("pre_tokenizer", json()));
    m.load_post_processor(j.value("post_processor", json()));
    const json dec = j.value("decoder", json());
    if (dec.is_object()) m.decoder = dec.value("type", "");
  } catch (const json::exception& e) {
    m.fail(std::string("malformed tokenizer.json: ") + e.what());
  } catch (const std::runtime_error& e) {
    if (dynamic_cast<const TokenizerError*>(&e)) throw;
    m.fail(e.what());
  }
  std::size_t max_id = 0;
  for (const auto& [tok, id] : m.vocab) max_id = std::max<std::size_t>(max_id, static_cast<std::size_t>(id));
  for (const auto& a : m.added) max_id = std::max<std::size_t>(max_id, static_cast<std::size_t>(a.id));
  m.id_to_token.assign(max_id + 1, "");
  for (const auto& [tok, id] : m.vocab) m.id_to_token[static_cast<std::size_t>(id)] = tok;
  m.special_by_id.assign(max_id + 1, false);
  for (const auto& a : m.added) {
    m.id_to_token[static_cast<std::size_t>(a.id)] = a.content;
    m.special_by_id[static_cast<std::size_t>(a.id)] = a.special;
  }
  for (std::size_t k = 0; k < m.added.size(); ++k)
    if (!m.added[k].content.empty()) m.added_by_byte[static_cast<unsigned char>(m.added[k].content[0])].push_back(k);
  return t;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  if (add_special_tokens) ids = impl_->prefix_ids;
  for (const auto& seg : impl_->split_added(std::string(text), false)) {
    if (seg.id >= 0)
      ids.push_back(seg.id);
    else
      impl_->encode_plain(seg.text, ids, seg.offset == 0);
  }
  if (add_special_tokens) ids.insert(ids.end(), impl_->suffix_ids.begin(), impl_->suffix_ids.end());
  return ids;
}

Tokenizer::Padded Tokenizer::encode_padded(std::string_view text, std::size_t max_length, int32_t pad_id) const {
  Padded out;
  std::vector<int32_t> content = encode(text, false);
  const std::size_t specials = impl_->prefix_ids.size() + impl_->suffix_ids.size();
  if (max_length < specials) throw TokenizerError(impl_->origin + ": max_length is shorter than the special tokens");
  if (content.size() > max_length - specials) content.resize(max_length - specials);  // right truncation
  out.ids = impl_->prefix_ids;
  out.ids.insert(out.ids.end(), content.begin(), content.end());
  out.ids.insert(out.ids.end(), impl_->suffix_ids.begin(), impl_->suffix_ids.end());
  out.attention_mask.assign(out.ids.size(), 1);
  out.ids.resize(max_length, pad_id);
  out.attention_mask.resize(max_length, 0);
  return out;
}

namespace {

// Expected length of the UTF-8 sequence led by `b` and the allowed range of its second byte (Unicode Table 3-7,
// the rules Rust's String::from_utf8_lossy applies); 0 for a byte that cannot lead one.
int utf8_lead(unsigned char b, unsigned char& lo, unsigned char& hi) {
  lo = 0x80, hi = 0xBF;
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b == 0xE0) return lo = 0xA0, 3;
  if (b == 0xED) return hi = 0x9F, 3;
  if (b >= 0xE1 && b <= 0xEF) return 3;
  if (b == 0xF0) return lo = 0x90, 4;
  if (b == 0xF4) return hi = 0x8F, 4;
  if (b >= 0xF1 && b <= 0xF3) return 4;
  return 0;
}

// The bytes as UTF-8, each maximal invalid subsequence replaced by U+FFFD (String::from_utf8_lossy).
std::string utf8_lossy(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  std::size_t i = 0;
  while (i < bytes.size()) {
    unsigned char lo = 0, hi = 0;
    const int len = utf8_lead(static_cast<unsigned char>(bytes[i]), lo, hi);
    int good = len > 0 ? 1 : 0;
    while (good > 0 && good < len && i + good < bytes.size()) {
      const auto c = static_cast<unsigned char>(bytes[i + good]);
      if (c < (good == 1 ? lo : 0x80) || c > (good == 1 ? hi : 0xBF)) break;
      ++good;
    }
    if (len > 0 && good == len) {
      out.append(bytes, i, static_cast<std::size_t>(len));
      i += static_cast<std::size_t>(len);
    } else {
      out += "\xEF\xBF\xBD";
      i += static_cast<std::size_t>(std::max(good, 1));
    }
  }
  return out;
}

// transformers' PreTrainedTokenizerBase.clean_up_tokenization, replacement by replacement in its order.
std::string clean_up_tokenization(std::string text) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    const std::string f = from, t = to;
    std::string out;
    std::size_t last = 0;
    for (std::size_t p = text.find(f); p != std::string::npos; p = text.find(f, last)) {
      out.append(text, last, p - last);
      out += t;
      last = p + f.size();
    }
    text = out + text.substr(last);
  }
  return text;
}

}  // namespace

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens,
                              bool clean_up_tokenization_spaces) const {
  const Impl& m = *impl_;
  if (m.decoder != "ByteLevel")
    throw TokenizerError(m.origin + ": decoding needs the ByteLevel decoder; this tokenizer's decoder is '" +
                         (m.decoder.empty() ? std::string("none") : m.decoder) + "'");
  static const std::unordered_map<std::string, unsigned char> kUnicodeToByte = [] {
    std::unordered_map<std::string, unsigned char> map;
    for (int b = 0; b < 256; ++b) map[byte_to_unicode(static_cast<unsigned char>(b))] = static_cast<unsigned char>(b);
    return map;
  }();
  std::string bytes;
  for (const int32_t id : ids) {
    if (id < 0 || static_cast<std::size_t>(id) >= m.id_to_token.size()) continue;
    const std::string& token = m.id_to_token[static_cast<std::size_t>(id)];
    if (token.empty()) continue;
    if (skip_special_tokens && m.special_by_id[static_cast<std::size_t>(id)]) continue;
    // ByteLevel decode: every character of the token mapped back to its byte, or, when one is not in the map,
    // the token's own UTF-8.
    std::string mapped;
    bool whole = true;
    for (std::size_t i = 0; i < token.size() && whole;) {
      unsigned char lo = 0, hi = 0;
      const int len = std::max(1, utf8_lead(static_cast<unsigned char>(token[i]), lo, hi));
      const auto it = kUnicodeToByte.find(token.substr(i, static_cast<std::size_t>(len)));
      if (it == kUnicodeToByte.end())
        whole = false;
      else
        mapped += static_cast<char>(it->second);
      i += static_cast<std::size_t>(len);
    }
    bytes += whole ? mapped : token;
  }
  std::string text = utf8_lossy(bytes);
  return clean_up_tokenization_spaces ? clean_up_tokenization(std::move(text)) : text;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  for (const auto& a : impl_->added)
    if (a.content == token) return a.id;
  auto it = impl_->vocab.find(std::string(token));
  if (it == impl_->vocab.end()) return std::nullopt;
  return it->second;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= impl_->id_to_token.size()) return "";
  return impl_->id_to_token[static_cast<std::size_t>(id)];
}

std::size_t Tokenizer::vocab_size() const { return impl_->id_to_token.size(); }

}  // namespace dg
