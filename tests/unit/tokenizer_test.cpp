// Byte-level BPE: an inline fixture (transformers' Qwen2 tokenizer test), then every golden case of
// tests/data/tokenizers/{qwen2,qwen3} (ids produced by HF tokenizers).
#include "diffgentor/tokenizer.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "diffgentor/text_regex.hpp"
#include "testdata.hpp"

using namespace dg;
using nlohmann::json;

namespace {

// transformers' test_tokenization_qwen2.py (Qwen2 tokenizer tests): 256 byte symbols, 14 merged tokens, one special.
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
  for (const char* t : {"\u0120l", "\u0120n", "\u0120lo", "\u0120low", "er", "\u0120lowest", "\u0120newer",
                        "\u0120wider", "01", ";}", ";}\u010a", "\u00cf\u0135", "\u0120#", "##"})
    vocab[t] = id++;
  return json{
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges",
         {"\u0120 l", "\u0120l o", "\u0120lo w", "e r", "0 1", "; }", ";} \u010a", "\u00cf \u0135", "\u0120 #",
          "# #"}}}},
      {"added_tokens", {{{"id", 270}, {"content", "<|endoftext|>"}, {"special", true}, {"normalized", false}}}},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern",
            {{"Regex",
              R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"post_processor", {{"type", "ByteLevel"}}}};
}

void check_cases(const std::string& name, int expected_cases) {
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
  EXPECT_EQ(checked, expected_cases) << name;
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
              std::string::npos)
        << e.what();
  }
  bad = tiny_qwen2();
  bad["model"]["merges"].push_back("zz qq");
  EXPECT_THROW(Tokenizer::from_json(bad, "x"), TokenizerError);
  EXPECT_THROW(Tokenizer::from_file("/nonexistent/tokenizer.json"), TokenizerError);
}

TEST(Tokenizer, Qwen2GoldenCases) {
  DG_REQUIRE_TESTDATA("tokenizers/qwen2/cases.jsonl");
  check_cases("qwen2", 54);
}

TEST(Tokenizer, Qwen3GoldenCases) {
  DG_REQUIRE_TESTDATA("tokenizers/qwen3/cases.jsonl");
  check_cases("qwen3", 54);
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
    EXPECT_EQ(tok.encode(e["leading_text"].get<std::string>()).size(), e["leading_token_count"].get<std::size_t>())
        << name;
    const std::size_t drop = e["start_idx"].get<std::size_t>();
    EXPECT_EQ(std::vector<int32_t>(ids.begin() + static_cast<long>(drop), ids.end()),
              e["kept_ids_after_drop"].get<std::vector<int32_t>>())
        << name;
  }
  const json& lc = t["longcat_image_edit"];
  EXPECT_EQ(tok.encode(lc["prefix"].get<std::string>()), lc["prefix_ids"].get<std::vector<int32_t>>());
  EXPECT_EQ(tok.encode(lc["suffix"].get<std::string>()), lc["suffix_ids"].get<std::vector<int32_t>>());
}

TEST(Tokenizer, ClipGoldenCases) {
  // CLIP: NFC, whitespace collapse, lower-casing, Split(Removed, inverted), ByteLevel with the GPT-2
  // regex, BPE with "</w>", RobertaProcessing (BOS/EOS) when special tokens are added.
  DG_REQUIRE_TESTDATA("tokenizers/clip/cases.jsonl");
  check_cases("clip", 47);
}

TEST(Tokenizer, PaddingAndTruncationAsThePipelinesAskForThem) {
  DG_REQUIRE_TESTDATA("tokenizers/clip/tokenizer.json");
  const std::string dir = dg::test::testdata_dir() + "/tokenizers/";
  const Tokenizer clip = Tokenizer::from_file(dir + "clip/tokenizer.json");
  // CLIP: 77 ids, BOS ... EOS, padded with EOS (49407) so that pooling at argmax(ids) finds the EOS.
  auto p = clip.encode_padded("How are you doing?", 77, 49407);
  ASSERT_EQ(p.ids.size(), 77u);
  EXPECT_EQ(std::vector<int32_t>(p.ids.begin(), p.ids.begin() + 7),
            (std::vector<int32_t>{49406, 829, 631, 592, 1960, 286, 49407}));
  EXPECT_EQ(p.ids[76], 49407);
  EXPECT_EQ(p.attention_mask[6], 1);
  EXPECT_EQ(p.attention_mask[7], 0);
  std::string long_text;
  for (int k = 0; k < 100; ++k) long_text += "cat ";
  p = clip.encode_padded(long_text, 77, 49407);
  EXPECT_EQ(p.ids.front(), 49406);
  EXPECT_EQ(p.ids[75], clip.encode("cat")[0]);  // 75 content tokens kept
  EXPECT_EQ(p.ids[76], 49407);
  // Qwen3 (FLUX.2-klein): no special tokens added, right-padded with <|endoftext|> to 512.
  const Tokenizer qwen3 = Tokenizer::from_file(dir + "qwen3/tokenizer.json");
  p = qwen3.encode_padded("<|im_start|>user\nA cat<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", 512,
                          151643);
  ASSERT_EQ(p.ids.size(), 512u);
  EXPECT_EQ(std::vector<int32_t>(p.ids.begin(), p.ids.begin() + 15),
            (std::vector<int32_t>{151644, 872, 198, 32, 8251, 151645, 198, 151644, 77091, 198, 151667, 271, 151668, 271,
                                  151643}));
  EXPECT_EQ(p.attention_mask[13], 1);
  EXPECT_EQ(p.attention_mask[14], 0);
  // T5: content, </s> (1), then pads (0) up to 512; a long text keeps </s> as its last real token.
  const Tokenizer t5 = Tokenizer::from_file(dir + "t5/tokenizer.json");
  p = t5.encode_padded("A cat holding a sign", 512, 0);
  EXPECT_EQ(std::vector<int32_t>(p.ids.begin(), p.ids.begin() + 8),
            (std::vector<int32_t>{71, 1712, 3609, 3, 9, 1320, 1, 0}));
  std::string very_long;
  for (int k = 0; k < 700; ++k) very_long += "cat ";
  p = t5.encode_padded(very_long, 512, 0);
  EXPECT_EQ(p.ids[511], 1);
  EXPECT_EQ(p.attention_mask[511], 1);
}

TEST(Tokenizer, TekkenStyleIgnoreMergesWithOffsetIds) {
  // A synthetic tokenizer in the layout transformers' Mistral converter writes for Tekken: specials at
  // ids 0..3, every regular token's id = rank + 4, ignore_merges, the Tekken split regex, no normalizer.
  json vocab = json::object();
  int rank = 0;
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(byte_to_unicode(static_cast<unsigned char>(b)));
  for (const char* t : {"ca", "cat", "\u0120ca", "\u0120cat", "dog", "\u0120dog"}) tokens.push_back(t);
  for (const auto& t : tokens) vocab[t] = 4 + rank++;
  const json j = {
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"ignore_merges", true},
        {"merges", {"c a", "ca t", "\u0120 ca", "\u0120ca t"}}}},  // "dog" has no merges at all
      {"added_tokens",
       {{{"id", 0}, {"content", "<unk>"}, {"special", true}, {"normalized", false}},
        {{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
        {{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}},
        {{"id", 3}, {"content", "[INST]"}, {"special", true}, {"normalized", false}}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern",
            {{"Regex",
              R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}}};
  const Tokenizer tok = Tokenizer::from_json(j, "tekken");
  const int32_t dog = 4 + 256 + 4, space_dog = dog + 1, cat = 4 + 256 + 1, space_cat = 4 + 256 + 3;
  // Whole pieces in the vocabulary map directly (ignore_merges), even with no merge path ("dog").
  EXPECT_EQ(tok.encode("[INST]dog cat dog"), (std::vector<int32_t>{3, dog, space_cat, space_dog}));
  // A piece outside the vocabulary is merged by rank: "cats" = "cat" + "s".
  EXPECT_EQ(tok.encode("cats"), (std::vector<int32_t>{cat, 4 + 's'}));
}

TEST(Tokenizer, T5AsTransformers5SavesItWithWhitespaceSplit) {
  // transformers 5 re-serialises T5's tokenizer.json: normalizer Precompiled alone, pre-tokenizer
  // WhitespaceSplit + Metaspace("always"). Goldens from HF tokenizers 0.23.1 on that file: the published cases
  // plus runs of spaces, tabs, newlines and Unicode spaces (NBSP, ideographic, em, thin).
  DG_REQUIRE_TESTDATA("tokenizers/t5/cases_transformers5.jsonl");
  const std::string dir = dg::test::testdata_dir() + "/tokenizers/t5";
  json j = json::parse(std::ifstream(dir + "/tokenizer.json"));
  j["normalizer"] = json(j["normalizer"]["normalizers"][0]);
  j["pre_tokenizer"] = json::parse(R"({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
      {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true}]})");
  const Tokenizer tok = Tokenizer::from_json(j, "t5 (transformers 5 layout)");
  std::ifstream in(dir + "/cases_transformers5.jsonl");
  int checked = 0;
  for (std::string line; std::getline(in, line);) {
    const json c = json::parse(line);
    EXPECT_EQ(tok.encode(c["text"].get<std::string>(), c["add_special_tokens"].get<bool>()),
              c["ids"].get<std::vector<int32_t>>())
        << c["text"];
    ++checked;
  }
  EXPECT_EQ(checked, 116);
}

TEST(Tokenizer, T5GoldenCasesWithANativeUnigram) {
  // Precompiled charsmap, Strip(right), Replace(" {2,}"), Metaspace(first), Unigram, "$A </s>".
  DG_REQUIRE_TESTDATA("tokenizers/t5/cases.jsonl");
  check_cases("t5", 48);
}
