#include "diffgentor/manifest.hpp"

#include <gtest/gtest.h>

#include "process.hpp"

using namespace dg;
using dg::test::TempDir;
using dg::test::write_text;

namespace {

std::string error_of(const std::string& path, const ManifestOptions& opt = {}) {
  try {
    load_manifest(path, opt);
  } catch (const ManifestError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Manifest, CsvWithJsonListsRelativePathsAndUrls) {
  TempDir d;
  write_text(d / "m.csv",
             "input_images,instruction,seed,negative_prompt\n"
             "\"[\"\"a.png\"\", \"\"sub/b,c.png\"\"]\",make it blue,7,blurry\n"
             "\"https://example.org/x.png?a=1,b=2\",second,,\n"
             "/abs/p.png,third,,\n");
  const Manifest m = load_manifest(d / "m.csv", {});
  EXPECT_EQ(m.format, "csv");
  EXPECT_EQ(m.image_column, "input_images");
  ASSERT_EQ(m.rows.size(), 3u);
  EXPECT_EQ(m.rows[0].index, 0);
  EXPECT_EQ(m.rows[2].index, 2);

  const RowInput r0 = interpret_row(m, m.rows[0]);
  EXPECT_TRUE(r0.problems.empty());
  EXPECT_EQ(r0.images, (std::vector<std::string>{d / "a.png", d / "sub/b,c.png"}));  // no comma split
  EXPECT_EQ(r0.seed, 7);
  EXPECT_EQ(r0.params.negative_prompt, "blurry");

  const RowInput r1 = interpret_row(m, m.rows[1]);
  EXPECT_EQ(r1.images, (std::vector<std::string>{"https://example.org/x.png?a=1,b=2"}));
  EXPECT_FALSE(r1.seed.has_value());
  EXPECT_FALSE(r1.params.negative_prompt.has_value());
  EXPECT_EQ(interpret_row(m, m.rows[2]).images[0], "/abs/p.png");
}

// The per-row parameter columns: parsed and range-checked as their flags are, each problem naming its field; an
// empty cell is "not given".
TEST(Manifest, ParameterColumnsArePerRowOverrides) {
  TempDir d;
  write_text(d / "m.csv",
             "image,instruction,num_inference_steps,guidance_scale,true_cfg_scale,negative_prompt,width,height\n"
             "a.png,one,8,3.5,4,blurry,1024,768\n"
             "a.png,two,,,,,,\n"
             "a.png,three,0,-1,nan,,9000,1.5\n"
             "a.png,four,28.0,,,,1024.0,\n");
  const Manifest m = load_manifest(d / "m.csv", {});
  const RowInput r0 = interpret_row(m, m.rows[0]);
  EXPECT_TRUE(r0.problems.empty());
  EXPECT_EQ(r0.params.steps, 8);
  EXPECT_EQ(r0.params.guidance, 3.5);
  EXPECT_EQ(r0.params.true_cfg, 4.0);
  EXPECT_EQ(r0.params.negative_prompt, "blurry");
  EXPECT_EQ(r0.params.width, 1024);
  EXPECT_EQ(r0.params.height, 768);
  const RowInput r1 = interpret_row(m, m.rows[1]);
  EXPECT_TRUE(r1.problems.empty());
  EXPECT_FALSE(r1.params.steps || r1.params.guidance || r1.params.true_cfg || r1.params.negative_prompt ||
               r1.params.width || r1.params.height);
  const RowInput r2 = interpret_row(m, m.rows[2]);
  const std::vector<std::string> expected = {
      "num_inference_steps: '0' is not an integer in 1..1000", "guidance_scale: '-1' is not a finite number >= 0",
      "true_cfg_scale: 'nan' is not a finite number >= 0", "width: '9000' is not an integer in 1..8192",
      "height: '1.5' is not an integer in 1..8192"};
  EXPECT_EQ(r2.problems, expected);
  const RowInput r3 = interpret_row(m, m.rows[3]);  // integral floats, as pandas writes an integer column with blanks
  EXPECT_TRUE(r3.problems.empty());
  EXPECT_EQ(r3.params.steps, 28);
  EXPECT_EQ(r3.params.width, 1024);
}

// The `lora` column: empty is the run's --lora set (unset), `none` no LoRA, else `;`-separated FILE[:SCALE] with
// relative files resolved against the manifest's folder; a file that does not exist is the row's problem.
TEST(Manifest, LoraColumnIsAPerRowSet) {
  TempDir d;
  write_text(d / "style.safetensors", "x");
  write_text(d / "loras/detail.safetensors", "x");
  write_text(d / "m.csv",
             "image,instruction,lora\n"
             "a.png,one,style.safetensors:0.8; loras/detail.safetensors\n"
             "a.png,two,\n"
             "a.png,three,none\n"
             "a.png,four,gone.safetensors:0.5\n");
  const Manifest m = load_manifest(d / "m.csv", {});
  const RowInput r0 = interpret_row(m, m.rows[0]);
  EXPECT_TRUE(r0.problems.empty());
  ASSERT_TRUE(r0.loras.has_value());
  ASSERT_EQ(r0.loras->size(), 2u);
  EXPECT_EQ((*r0.loras)[0].path, d / "style.safetensors");
  EXPECT_EQ((*r0.loras)[0].scale, 0.8);
  EXPECT_EQ((*r0.loras)[1].path, d / "loras/detail.safetensors");
  EXPECT_EQ((*r0.loras)[1].scale, 1.0);
  EXPECT_FALSE(interpret_row(m, m.rows[1]).loras.has_value());
  const RowInput r2 = interpret_row(m, m.rows[2]);
  ASSERT_TRUE(r2.loras.has_value());
  EXPECT_TRUE(r2.loras->empty());
  const RowInput r3 = interpret_row(m, m.rows[3]);
  ASSERT_EQ(r3.problems.size(), 1u);
  EXPECT_EQ(r3.problems[0],
            "lora: 'gone.safetensors:0.5' names no file (" + (d / "gone.safetensors") + " does not exist)");
}

TEST(Manifest, ImageColumnFallbacksAndIndexColumn) {
  TempDir d;
  write_text(d / "m.csv", "index,image_url,instruction\n10,x.png,a\n3,y.png,b\n");
  Manifest m = load_manifest(d / "m.csv", {});
  EXPECT_EQ(m.image_column, "image_url");
  EXPECT_EQ(m.rows[0].index, 10);
  EXPECT_EQ(m.rows[1].index, 3);
  write_text(d / "n.csv", "image,prompt\nx.png,a\n");
  m = load_manifest(d / "n.csv", {"prompt", std::nullopt});
  EXPECT_EQ(m.image_column, "image");
  EXPECT_EQ(m.instruction_column, "prompt");
}

TEST(Manifest, UnusableManifestsNameFileLineAndField) {
  TempDir d;
  write_text(d / "dup.csv", "index,image,instruction\n1,a.png,x\n2,b.png,y\n1,c.png,z\n");
  const std::string dup = error_of(d / "dup.csv");
  EXPECT_NE(dup.find("dup.csv"), std::string::npos);
  EXPECT_NE(dup.find("line 4"), std::string::npos);
  EXPECT_NE(dup.find("duplicate index 1 (first at line 2)"), std::string::npos);

  write_text(d / "nonint.csv", "index,image,instruction\n1,a.png,x\nabc,b.png,y\n");
  const std::string nonint = error_of(d / "nonint.csv");
  EXPECT_NE(nonint.find("line 3, field 'index': 'abc' is not an integer"), std::string::npos) << nonint;

  write_text(d / "noinstr.csv", "image,text\na.png,x\n");
  EXPECT_NE(error_of(d / "noinstr.csv").find("no instruction column 'instruction'"), std::string::npos);
  write_text(d / "noimg.csv", "picture,instruction\na.png,x\n");
  EXPECT_NE(error_of(d / "noimg.csv").find("no image column"), std::string::npos);
  EXPECT_NE(error_of(d / "missing.csv").find("not found"), std::string::npos);
  write_text(d / "empty.csv", "");
  EXPECT_NE(error_of(d / "empty.csv").find("empty"), std::string::npos);
  write_text(d / "ok.csv", "image,instruction\na.png,x\n");
  EXPECT_NE(error_of(d / "ok.csv", {"instruction", std::string("name")}).find("--output_name_column 'name'"),
            std::string::npos);
}

TEST(Manifest, MalformedLineFailsOnlyThatRow) {
  TempDir d;
  write_text(d / "m.csv", "image,instruction\na.png,fine\nb.png,too,many,fields\nc.png,\"bad\"quote\nd.png,ok\n");
  const Manifest m = load_manifest(d / "m.csv", {});
  ASSERT_EQ(m.rows.size(), 4u);
  EXPECT_TRUE(interpret_row(m, m.rows[0]).problems.empty());
  const auto bad = interpret_row(m, m.rows[1]).problems;
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0], "malformed record: expected 2 fields, found 4");
  EXPECT_EQ(interpret_row(m, m.rows[2]).problems[0], "malformed record: text after a closing quote");
  EXPECT_TRUE(interpret_row(m, m.rows[3]).problems.empty());
  EXPECT_EQ(m.rows[3].index, 3);  // identities do not shift around a bad line
}

TEST(Manifest, UnidentifiableMalformedRecordBecomesAnOrphan) {
  TempDir d;
  write_text(d / "m.csv", "index,image,instruction\n5,a.png,x\n\"6,b.png,y\n");
  const Manifest m = load_manifest(d / "m.csv", {});
  ASSERT_EQ(m.rows.size(), 1u);
  ASSERT_EQ(m.orphans.size(), 1u);
  EXPECT_EQ(m.orphans[0].line, 3);
}

TEST(Manifest, RowProblems) {
  TempDir d;
  write_text(d / "m.csv",
             "input_images,instruction,seed\n"
             "a.png,   ,\n"
             "[not json,x,\n"
             ",x,\n"
             "ftp://h/a.png,x,\n"
             "a.png,x,-4\n"
             "\"[\"\"a.png\"\", 3]\",x,\n");
  const Manifest m = load_manifest(d / "m.csv", {});
  auto first = [&](int k) { return interpret_row(m, m.rows[k]).problems.at(0); };
  EXPECT_EQ(first(0), "instruction: empty instruction");
  EXPECT_EQ(first(1), "input_images: not a valid JSON list");
  EXPECT_EQ(first(2), "input_images: no input image");
  EXPECT_NE(first(3).find("unsupported URL scheme"), std::string::npos);
  EXPECT_EQ(first(4), "seed: '-4' is not a non-negative integer");
  EXPECT_EQ(first(5), "input_images: list items must be non-empty strings");
}

TEST(Manifest, Jsonl) {
  TempDir d;
  write_text(d / "m.jsonl",
             "{\"index\": 4, \"input_images\": [\"a.png\", \"b.png\"], \"instruction\": \"x\", \"seed\": 9}\n"
             "\n"
             "{not json}\n"
             "{\"index\": \"7\", \"input_images\": \"c.png\", \"instruction\": \"y\", \"extra\": true}\n");
  const Manifest m = load_manifest(d / "m.jsonl", {});
  EXPECT_EQ(m.format, "jsonl");
  ASSERT_EQ(m.rows.size(), 2u);  // the invalid line has no readable index: an orphan
  ASSERT_EQ(m.orphans.size(), 1u);
  EXPECT_EQ(m.orphans[0].line, 3);
  EXPECT_EQ(m.rows[0].index, 4);
  EXPECT_EQ(m.rows[1].index, 7);
  const RowInput r0 = interpret_row(m, m.rows[0]);
  EXPECT_EQ(r0.images.size(), 2u);
  EXPECT_EQ(r0.seed, 9);
  EXPECT_EQ(*m.value(m.rows[1], "extra"), "true");
}
