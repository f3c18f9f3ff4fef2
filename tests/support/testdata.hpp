#pragma once
// Golden data from upstream lives outside the repository: $DIFFGENTOR_TESTDATA, default
// ../shared/testdata beside the checkout. Tests that need it skip cleanly when it is absent.
#include <cstdlib>
#include <filesystem>
#include <string>

namespace dg::test {

inline std::string testdata_dir() {
  if (const char* env = std::getenv("DIFFGENTOR_TESTDATA"); env && *env) return env;
  return std::string(DG_SOURCE_DIR) + "/../shared/testdata";
}

}  // namespace dg::test

/// Skips the current test when `rel` (a path below the test data folder) does not exist.
#define DG_REQUIRE_TESTDATA(rel)                                                                  \
  do {                                                                                            \
    if (!std::filesystem::exists(dg::test::testdata_dir() + "/" + (rel)))                        \
      GTEST_SKIP() << "golden data " << (rel) << " not found under " << dg::test::testdata_dir() \
                   << " (set DIFFGENTOR_TESTDATA)";                                               \
  } while (0)
