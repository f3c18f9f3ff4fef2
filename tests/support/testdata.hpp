#pragma once
// Golden data from upstream: tests/data in the repository (tests/data/README.md), or $DIFFGENTOR_TESTDATA.
// A missing file fails the test: a clone must test as much as CI does.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace dg::test {

inline std::string testdata_dir() {
  if (const char* env = std::getenv("DIFFGENTOR_TESTDATA"); env && *env) return env;
  return std::string(DG_SOURCE_DIR) + "/tests/data";
}

/// The JSON file `rel` below the test data folder, parsed once per process (a missing file throws).
inline const nlohmann::json& testdata_json(const std::string& rel) {
  static std::map<std::string, nlohmann::json> cache;
  auto it = cache.find(rel);
  if (it == cache.end()) {
    std::ifstream in(testdata_dir() + "/" + rel);
    if (!in) throw std::runtime_error("golden data " + rel + " not found under " + testdata_dir());
    it = cache.emplace(rel, nlohmann::json::parse(in)).first;
  }
  return it->second;
}

}  // namespace dg::test

/// Fails the current test when `rel` (a path below the test data folder) does not exist.
#define DG_REQUIRE_TESTDATA(rel)                                                                 \
  do {                                                                                           \
    if (!std::filesystem::exists(dg::test::testdata_dir() + "/" + (rel)))                        \
      GTEST_FAIL() << "golden data " << (rel) << " not found under " << dg::test::testdata_dir() \
                   << " (set DIFFGENTOR_TESTDATA)";                                              \
  } while (0)
