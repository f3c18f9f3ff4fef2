// The report's page model and page (include/diffgentor/report.hpp): counts, order, filters, what a failed row
// shows, wall time, and escaping of instructions with markup, quotes and non-ASCII text.
#include "diffgentor/report.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "process.hpp"

using namespace dg;
using dg::test::TempDir;
using dg::test::write_text;

namespace {

Record done(int index, const std::string& instruction, const std::string& finished, double total_s) {
  return {{"index", std::to_string(index)},
          {"image", "in" + std::to_string(index) + ".png"},
          {"instruction", instruction},
          {"output_image", fmt::format("{:06d}.png", index)},
          {"model_name", "Qwen/Qwen-Image-Edit-2511"},
          {"model_type", "qwen"},
          {"effective_seed", std::to_string(100 + index)},
          {"effective_num_inference_steps", "40"},
          {"effective_guidance_scale", "1"},
          {"effective_true_cfg_scale", "4"},
          {"effective_width", "64"},
          {"effective_height", "48"},
          {"enhance_status", ""},
          {"time_model_s", "1.5"},
          {"time_total_s", fmt::format("{}", total_s)},
          {"finished_at", finished}};
}

RecordTable table(const std::vector<Record>& records) {
  RecordTable t;
  for (const Record& r : records) t.upsert(r);
  return t;
}

}  // namespace

TEST(Report, CountsOrderFailuresAndWallTime) {
  TempDir d;
  write_text(d / "m.csv",
             "index,image,instruction\n2,in2.png,two\n3,in3.png,three\n7,in7.png,seven\n"
             "10,in10.png,ten\n11,in11.png,eleven\n");
  const Manifest manifest = load_manifest(d / "m.csv", {});
  Record fallback = done(10, "ten", "2026-12-01T10:00:09.500Z", 2.0);
  fallback["enhance_status"] = "fallback: timeout";
  fallback["instruction_enhanced"] = "ten";
  const RecordTable results = table(
      {fallback, done(2, "two", "2026-12-01T10:00:01.000Z", 3.0), done(7, "seven", "2026-12-01T10:00:05.000Z", 2.0)});
  const RecordTable failures = table({{{"index", "3"},
                                       {"stage", "decode"},
                                       {"reason", "in3.png: not an image"},
                                       {"output_image", "000003.png"},
                                       {"finished_at", "2026-12-01T10:00:03.000Z"}},
                                      {{"index", "7"}, {"stage", "model"}, {"reason", "made since"}}});
  ReportOptions o;
  const ReportModel m = make_report_model(results, failures, &manifest, o);
  EXPECT_EQ(m.done, 3u);
  EXPECT_EQ(m.failed, 1u);   // index 7 failed once and was made since
  EXPECT_EQ(m.pending, 1u);  // index 11
  EXPECT_EQ(m.model_name, "Qwen/Qwen-Image-Edit-2511");
  EXPECT_EQ(m.steps, "40");
  EXPECT_EQ(m.true_cfg, "4");
  EXPECT_EQ(m.enhance_fallbacks, 1u);
  // First row started at 10:00:01 - 3 s, the last finished at 10:00:09.5: 11.5 s for 3 rows.
  EXPECT_DOUBLE_EQ(m.wall_s, 11.5);
  EXPECT_DOUBLE_EQ(m.rows_per_s, 3 / 11.5);
  ASSERT_EQ(m.rows.size(), 4u);
  std::vector<int64_t> order;
  for (const auto& r : m.rows) order.push_back(r.index);
  EXPECT_EQ(order, (std::vector<int64_t>{2, 3, 7, 10}));
  const ReportRow& failed = m.rows[1];
  EXPECT_TRUE(failed.failed);
  EXPECT_EQ(failed.stage, "decode");
  EXPECT_EQ(failed.instruction, "three");  // from the manifest
  EXPECT_EQ(failed.inputs, (std::vector<std::string>{(d / "in3.png")}));
  EXPECT_EQ(m.rows[0].inputs, (std::vector<std::string>{(d / "in2.png")}));  // resolved against the manifest
  EXPECT_EQ(m.rows[0].size, "64x48");
  EXPECT_EQ(m.rows[3].enhanced, "ten");

  o.failed_only = true;
  EXPECT_EQ(make_report_model(results, failures, &manifest, o).rows.size(), 1u);
  o.failed_only = false;
  o.limit = 2;
  const ReportModel limited = make_report_model(results, failures, nullptr, o);
  ASSERT_EQ(limited.rows.size(), 2u);
  EXPECT_EQ(limited.rows[1].index, 3);
  EXPECT_FALSE(limited.pending.has_value());  // no manifest
  EXPECT_EQ(limited.rows[0].inputs, (std::vector<std::string>{"in2.png"}));
}

TEST(Report, InstructionsNeverBecomeMarkup) {
  const std::string evil = "<script>alert(\"x\")</script> & 'q' caf\xc3\xa9 \xe6\xbc\xa2\xe5\xad\x97 </body>";
  Record r = done(0, evil, "2026-12-01T10:00:01.000Z", 1.0);
  r["model_name"] = "<b>bold</b>";
  const ReportModel m = make_report_model(table({r}), RecordTable{}, nullptr, ReportOptions{});
  const std::string html = render_report_html(m, {});
  EXPECT_EQ(html.find("<script>alert"), std::string::npos);
  EXPECT_EQ(html.find("</body> "), std::string::npos);
  EXPECT_EQ(html.find("<b>bold"), std::string::npos);
  EXPECT_NE(html.find("diffgentor report: &lt;b&gt;bold&lt;/b&gt;"), std::string::npos);
  // In the JSON the page's script reads: '<' escaped, quotes JSON-escaped, non-ASCII kept as UTF-8.
  EXPECT_NE(html.find("\"instruction\":\"\\u003cscript>alert(\\\"x\\\")\\u003c/script> & 'q' caf\xc3\xa9 "
                      "\xe6\xbc\xa2\xe5\xad\x97 \\u003c/body>\""),
            std::string::npos);
  EXPECT_NE(html.find("<rect"), std::string::npos);  // one finished row: one bar
}
