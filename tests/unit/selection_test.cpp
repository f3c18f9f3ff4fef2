#include "diffgentor/selection.hpp"

#include <gtest/gtest.h>

#include <map>

#include "diffgentor/options.hpp"

using namespace dg;

TEST(RowFilter, Syntax) {
  const RowFilter f = parse_row_filter("0:3,7, 10:");
  for (int64_t i : {0, 1, 2, 7, 10, 11, 1000}) EXPECT_TRUE(f.contains(i)) << i;
  for (int64_t i : {-1, 3, 6, 8, 9}) EXPECT_FALSE(f.contains(i)) << i;
  const RowFilter g = parse_row_filter(":2");
  EXPECT_TRUE(g.contains(-5));
  EXPECT_TRUE(g.contains(1));
  EXPECT_FALSE(g.contains(2));
  for (const char* bad : {"", "a", "1:2:3", "5:5", "9:3", "1,,2", "1.5"}) {
    try {
      parse_row_filter(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("--filter_rows"), std::string::npos);
    }
  }
}

TEST(Shard, RangesCoverEveryRowExactlyOnce) {
  for (std::size_t total : {0u, 1u, 2u, 3u, 10u, 101u}) {
    for (int count = 1; count <= 7; ++count) {
      std::vector<int> seen(total, 0);
      for (int rank = 0; rank < count; ++rank) {
        const auto [b, e] = shard_range(total, {rank, count, "flags"});
        for (std::size_t k = b; k < e; ++k) ++seen[k];
        EXPECT_LE(e - b, total / count + 1);
      }
      for (int s : seen) EXPECT_EQ(s, 1);
    }
  }
}

TEST(Shard, FromFlagsAndSchedulerEnvironments) {
  auto env_of = [](std::map<std::string, std::string> vars) {
    return [vars](const char* n) -> const char* {
      auto it = vars.find(n);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  };
  Shard s = resolve_shard(std::nullopt, std::nullopt, env_of({}));
  EXPECT_EQ(s.rank, 0);
  EXPECT_EQ(s.count, 1);
  s = resolve_shard(2, 3, env_of({{"RANK", "0"}, {"WORLD_SIZE", "8"}}));
  EXPECT_EQ(s.rank, 2);
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.source, "flags");
  s = resolve_shard(std::nullopt, std::nullopt, env_of({{"RANK", "3"}, {"WORLD_SIZE", "4"}}));
  EXPECT_EQ(s.rank, 3);
  EXPECT_EQ(s.source, "torchrun");
  s = resolve_shard(
      std::nullopt, std::nullopt,
      env_of({{"SLURM_ARRAY_TASK_ID", "5"}, {"SLURM_ARRAY_TASK_MIN", "1"}, {"SLURM_ARRAY_TASK_COUNT", "6"}}));
  EXPECT_EQ(s.rank, 4);
  EXPECT_EQ(s.count, 6);
  EXPECT_EQ(s.source, "slurm-array");
  s = resolve_shard(std::nullopt, std::nullopt, env_of({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}}));
  EXPECT_EQ(s.rank, 1);
  EXPECT_EQ(s.source, "slurm");
  s = resolve_shard(std::nullopt, 5, env_of({{"JOB_COMPLETION_INDEX", "4"}}));
  EXPECT_EQ(s.rank, 4);
  EXPECT_EQ(s.count, 5);
  EXPECT_THROW(resolve_shard(std::nullopt, std::nullopt, env_of({{"JOB_COMPLETION_INDEX", "4"}})), UsageError);
  EXPECT_THROW(resolve_shard(std::nullopt, std::nullopt, env_of({{"RANK", "4"}, {"WORLD_SIZE", "4"}})), UsageError);
  EXPECT_THROW(resolve_shard(std::nullopt, std::nullopt, env_of({{"RANK", "x"}, {"WORLD_SIZE", "4"}})), UsageError);
}
