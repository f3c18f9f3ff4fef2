#include "diffgentor/naming.hpp"

#include <gtest/gtest.h>

using dg::make_output_name;

TEST(Naming, DefaultIsZeroPaddedIndex) {
  EXPECT_EQ(make_output_name(std::nullopt, 42).name, "000042.png");
  EXPECT_EQ(make_output_name(std::nullopt, 1234567).name, "1234567.png");
}

TEST(Naming, RejectsAbsoluteEscapingAndEmptyNames) {
  for (const char* bad : {"/etc/passwd", "../x.png", "a/../../x.png", "..", "./..", "~/x.png", "", "  ", "dir/"}) {
    const auto n = make_output_name(std::string(bad), 1);
    EXPECT_TRUE(n.name.empty()) << bad;
    EXPECT_FALSE(n.error.empty()) << bad;
  }
  EXPECT_NE(make_output_name(std::string("../x.png"), 1).error.find("escapes --output_dir"), std::string::npos);
  EXPECT_NE(make_output_name(std::string("/x.png"), 1).error.find("absolute"), std::string::npos);
}

TEST(Naming, ExtensionsAndSubfolders) {
  EXPECT_EQ(make_output_name(std::string("a.png"), 0).name, "a.png");
  EXPECT_EQ(make_output_name(std::string("a.JPG"), 0).name, "a.JPG");
  EXPECT_EQ(make_output_name(std::string("a.jpeg"), 0).name, "a.jpeg");
  EXPECT_EQ(make_output_name(std::string("a.webp"), 0).name, "a.webp");
  EXPECT_EQ(make_output_name(std::string("a.gif"), 0).name, "a.png");
  EXPECT_EQ(make_output_name(std::string("shot.v2"), 0).name, "shot.v2.png");
  EXPECT_EQ(make_output_name(std::string("noext"), 0).name, "noext.png");
  EXPECT_EQ(make_output_name(std::string("sub/./dir/x.jpg"), 0).name, "sub/dir/x.jpg");
  EXPECT_EQ(make_output_name(std::string("a/../b.png"), 0).name, "b.png");
}

TEST(Naming, OutputFormatSetsTheExtension) {
  const std::optional<std::string> jpg("jpg"), webp("webp");
  EXPECT_EQ(make_output_name(std::nullopt, 3, jpg).name, "000003.jpg");
  EXPECT_EQ(make_output_name(std::string("a.png"), 0, jpg).name, "a.jpg");
  EXPECT_EQ(make_output_name(std::string("a.jpeg"), 0, webp).name, "a.webp");
  EXPECT_EQ(make_output_name(std::string("shot.v2"), 0, jpg).name, "shot.v2.jpg");
  EXPECT_EQ(make_output_name(std::string("sub/x.gif"), 0, std::optional<std::string>("png")).name, "sub/x.png");
  EXPECT_NE(make_output_name(std::string("/abs.png"), 0, jpg).error, "");  // the same refusals
}
