#pragma once
// Golden data from upstream: tests/data in the repository (tests/data/README.md), or $DIFFGENTOR_TESTDATA.
// A missing file fails the test: a clone must test as much as CI does.
#include <cstdlib>
#include <filesystem>
#include <string>

namespace dg::test {

inline std::string testdata_dir() {
  if (const char* env = std::getenv("DIFFGENTOR_TESTDATA"); env && *env) return env;
  return std::string(DG_SOURCE_DIR) + "/tests/data";
}

}  // namespace dg::test

/// Fails the current test when `rel` (a path below the test data folder) does not exist.
#define DG_REQUIRE_TESTDATA(rel)                                                                 \
  do {                                                                                           \
    if (!std::filesystem::exists(dg::test::testdata_dir() + "/" + (rel)))                        \
      GTEST_FAIL() << "golden data " << (rel) << " not found under " << dg::test::testdata_dir() \
                   << " (set DIFFGENTOR_TESTDATA)";                                              \
  } while (0)
