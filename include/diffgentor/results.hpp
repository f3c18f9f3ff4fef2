#pragma once
/// results.csv and failures.csv (docs/batch-runner.md, "Results survive crashes and earlier runs").
///
/// Each process appends finished rows to a journal (one flushed CSV line per row), so a crash loses
/// at most the rows in flight. Opening a journal first compacts what is already there (drops a torn
/// last line, keeps one record per key, the later one winning) and rewrites it atomically, so
/// earlier runs' rows are kept. A single-shard run journals straight into results.csv; shard R of N
/// journals into `results.shard-R-of-N.csv` and, when it ends, merges every shard's journal into
/// results.csv under a file lock, so the last shard to finish leaves the complete file.
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace dg {

using Record = std::map<std::string, std::string>;

/// A CSV table keyed by the `index` column (or `line:N` for records without an index).
struct RecordTable {
  std::vector<std::string> columns;
  std::vector<Record> records;  ///< one per key, ordered by numeric index

  /// Reads a CSV file if it exists; a torn last line (no newline at the end) is dropped.
  static RecordTable load(const std::string& path);
  /// Adds `r`, replacing an earlier record with the same key; new columns are appended.
  void upsert(const Record& r);
  void add_columns(const std::vector<std::string>& cols);
  std::string to_csv() const;
  const Record* find(const std::string& key) const;
};

std::string record_key(const Record& r);

class Journal {
 public:
  /// Compacts `path` (if present) with `columns` added to its header and opens it for appending.
  Journal(std::string path, const std::vector<std::string>& columns);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  /// Appends one record (unknown keys are ignored, missing ones left empty) and flushes it.
  void append(const Record& r);
  /// Closes the file; a later compaction or merge dedupes.
  void close();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> columns_;
  std::FILE* file_ = nullptr;
  std::mutex mu_;
};

/// The journal file of a shard: `path` itself for a single shard, else `<stem>.shard-R-of-N<ext>`.
std::string shard_journal_path(const std::string& path, int rank, int count);

/// Merges `path` and every `<stem>.shard-*-of-*<ext>` beside it into `path` (atomically; under
/// the file lock `path.lock` when `lock` is set, as shards of one run do). Records with the same key keep the one with
/// the latest `finished_at`. When `successes` is given, a failure is dropped if that table holds the key with a
/// `finished_at` not older than the failure's (the row was done later).
RecordTable merge_journals(const std::string& path, const RecordTable* successes = nullptr, bool lock = false);

}  // namespace dg
