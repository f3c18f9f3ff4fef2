// Byte-level BPE: an inline fixture (transformers' Qwen2 tokenizer test), then every golden case of
// ../shared/testdata/tokenizers/{qwen2,qwen3} (ids produced by HF tokenizers).
#include "diffgentor/tokenizer.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "diffgentor/text_regex.hpp"
#include "testdata.hpp"

using namespace dg;
using nlohmann::json;

namespace {

// transformers tests/models/qwen2/test_tokenization_qwen2.py: 256 byte symbols, 14 merged tokens, one special.
json tiny_qwen2() {
  json vocab = json::object();
  int id = 0;
  for (int b = 0; b < 256; ++b) {
    // the map order of bytes_to_unicode: printable bytes first, then the remapped ones
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    if (printable) vocab[byte_to_unicode(static_cast<unsigned char>(b))] = id++;
  }
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    if (!printable) vocab[byte_to_unicode(static_cast<unsigned char>(b))] = id++;
  }
  for (const char* t : {"\u0120l", "\u0120n", "\u0120lo", "\u0120low", "er", "\u0120lowest", "\u0120newer", "\u0120wider",
                        "01", ";}", ";}\u010a", "\u00cf\u0135", "\u0120#", "##"})
    vocab[t] = id++;
  return json{
      {"model", {{"type", "BPE"}, {"vocab", vocab},
                 {"merges", {"\u0120 l", "\u0120l o", "\u0120lo w", "e r", "0 1", "; }", ";} \u010a", "\u00cf \u0135", "\u0120 #", "# #"}}}},
      {"added_tokens", {{{"id", 270}, {"content", "<|endoftext|>"}, {"special", true}, {"normalized", false}}}},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"post_processor", {{"type", "ByteLevel"}}}};
}

void check_cases(const std::string& name) {
  const std::string dir = dg::test::testdata_dir() + "/tokenizers/" + name;
  const Tokenizer tok = Tokenizer::from_file(dir + "/tokenizer.json");
  std::ifstream in(dir + "/cases.jsonl");
  int checked = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const json c = json::parse(line);
    const auto want = c["ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(tok.encode(c["text"].get<std::string>(), c.value("add_special_tokens", false)), want)
        << name << ": " << c["text"];
    ++checked;
  }
  EXPECT_EQ(checked, 54) << name;
}

}  // namespace

TEST(Tokenizer, InlineQwen2Fixture) {
  const Tokenizer tok = Tokenizer::from_json(tiny_qwen2(), "inline");
  EXPECT_EQ(tok.encode("lower lower newer 010;}\n<|endoftext|>\u03d2\u0301"),
            (std::vector<int32_t>{75, 78, 86, 260, 259, 260, 220, 77, 68, 86, 260, 220, 15, 16, 15, 266, 270, 267}));
  EXPECT_EQ(tok.encode(" ###"), (std::vector<int32_t>{268, 269}));
  EXPECT_EQ(tok.token_to_id("<|endoftext|>"), 270);
  EXPECT_EQ(tok.id_to_token(259), "\u0120low");
}

TEST(Tokenizer, ErrorsNameTheFileAndField) {
  json bad = tiny_qwen2();
  bad["pre_tokenizer"] = {{"type", "Whitespace"}};
  try {
    Tokenizer::from_json(bad, "x/tokenizer.json");
    FAIL();
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find("x/tokenizer.json: pre_tokenizer type 'Whitespace' is not supported"),
              std::string::npos) << e.what();
  }
  bad = tiny_qwen2();
  bad["model"]["merges"].push_back("zz qq");
  EXPECT_THROW(Tokenizer::from_json(bad, "x"), TokenizerError);
  EXPECT_THROW(Tokenizer::from_file("/nonexistent/tokenizer.json"), TokenizerError);
}

TEST(Tokenizer, Qwen2GoldenCases) {
  DG_REQUIRE_TESTDATA("tokenizers/qwen2/cases.jsonl");
  check_cases("qwen2");
}

TEST(Tokenizer, Qwen3GoldenCases) {
  DG_REQUIRE_TESTDATA("tokenizers/qwen3/cases.jsonl");
  check_cases("qwen3");
}

TEST(Tokenizer, QwenTemplatesAndTheir64TokenPrefix) {
  DG_REQUIRE_TESTDATA("tokenizers/qwen2/templates.json");
  const std::string dir = dg::test::testdata_dir() + "/tokenizers/qwen2";
  const Tokenizer tok = Tokenizer::from_file(dir + "/tokenizer.json");
  const json t = json::parse(std::ifstream(dir + "/templates.json"))["templates"];
  for (const char* name : {"qwenimage_edit_plus", "qwenimage_edit", "qwenimage_t2i"}) {
    const json& e = t[name];
    const auto ids = tok.encode(e["full_prompt"].get<std::string>());
    EXPECT_EQ(ids, e["ids"].get<std::vector<int32_t>>()) << name;
    EXPECT_EQ(tok.encode(e["leading_text"].get<std::string>()).size(), e["leading_token_count"].get<std::size_t>()) << name;
    const std::size_t drop = e["start_idx"].get<std::size_t>();
    EXPECT_EQ(std::vector<int32_t>(ids.begin() + static_cast<long>(drop), ids.end()),
              e["kept_ids_after_drop"].get<std::vector<int32_t>>()) << name;
  }
  const json& lc = t["longcat_image_edit"];
  EXPECT_EQ(tok.encode(lc["prefix"].get<std::string>()), lc["prefix_ids"].get<std::vector<int32_t>>());
  EXPECT_EQ(tok.encode(lc["suffix"].get<std::string>()), lc["suffix_ids"].get<std::vector<int32_t>>());
}
