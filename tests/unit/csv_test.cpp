#include "diffgentor/csv.hpp"

#include <gtest/gtest.h>

using dg::parse_csv;

TEST(Csv, QuotedCommasQuotesAndNewlines) {
  const auto recs = parse_csv("a,b,c\n1,\"x, y\",\"say \"\"hi\"\"\"\n2,\"line1\nline2\",z\n");
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[1].fields, (std::vector<std::string>{"1", "x, y", "say \"hi\""}));
  EXPECT_EQ(recs[2].fields[1], "line1\nline2");
  EXPECT_EQ(recs[2].line, 3);
  EXPECT_TRUE(recs[2].error.empty());
}

TEST(Csv, BomCrlfAndBlankLines) {
  const auto recs = parse_csv("\xEF\xBB\xBFindex,instruction\r\n\r\n0,hello\r\n1,\"a\r\nb\"\r\n");
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].fields[0], "index");
  EXPECT_EQ(recs[1].fields, (std::vector<std::string>{"0", "hello"}));
  EXPECT_EQ(recs[1].line, 3);
  EXPECT_EQ(recs[2].fields[1], "a\r\nb");
}

TEST(Csv, LastLineWithoutNewlineAndEmptyFields) {
  const auto recs = parse_csv("a,b\n,\n1,");
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[1].fields, (std::vector<std::string>{"", ""}));
  EXPECT_EQ(recs[2].fields, (std::vector<std::string>{"1", ""}));
}

TEST(Csv, MalformedRecordsAreReportedAndParsingContinues) {
  const auto recs = parse_csv("a,b\n1,\"ok\"junk\n2,fine\n");
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[1].error, "text after a closing quote");
  EXPECT_TRUE(recs[2].error.empty());
  EXPECT_EQ(recs[2].fields[1], "fine");

  const auto open = parse_csv("a,b\n1,\"never closed\n2,x\n");
  ASSERT_EQ(open.size(), 2u);
  EXPECT_EQ(open[1].error, "unterminated quoted field");
}

TEST(Csv, EscapeRoundTrips) {
  const std::vector<std::string> fields{"plain", "with,comma", "with \"quote\"", "multi\nline", " padded ", ""};
  const auto recs = parse_csv(dg::csv_line(fields));
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].fields, fields);
  EXPECT_EQ(dg::csv_escape("plain"), "plain");
}
