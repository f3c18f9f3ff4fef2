#pragma once
/// results.csv and failures.csv (docs/batch-runner.md, "Results survive crashes and earlier runs" and
/// "Guarantees").
///
/// Each process appends finished rows to a journal (one CSV line per row, written whole), so a crash loses
/// at most the rows in flight. Opening a journal first compacts what is already there (keeps one record per
/// key, the later one winning) and rewrites it atomically, so earlier runs' rows are kept. A single-shard run
/// journals straight into results.csv; shard R of N journals into `results.shard-R-of-N.csv` and, when it
/// ends, merges every shard's journal into results.csv, so the last shard to finish leaves the complete file.
///
/// Every change to a file (append, compaction, merge) happens under the file lock `<file>.lock`, and an
/// append always goes to the file as it is then (opened for each line), so any number of processes may write
/// one folder. A run also holds `<journal>.run.lock` for its whole life (RunLock): a second run of the same
/// shard on the same folder is refused at start-up. Records that cannot be read (a torn line, a row with
/// missing fields) are never dropped silently: the file is copied aside to `<file>.<time>.corrupt` before it
/// is rewritten, and the lines are named in a warning. A file that cannot be trusted at all (no header line,
/// a quote that swallows the lines after it) throws ResultsError before any work.
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace dg {

using Record = std::map<std::string, std::string>;

/// A results or failures file that cannot be trusted, or a folder another run of the same shard holds:
/// reported at start-up (exit 3), nothing is changed.
struct ResultsError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A CSV table keyed by the `index` column (or `line:N` for records without an index).
struct RecordTable {
  std::vector<std::string> columns;
  std::vector<Record> records;  ///< one per key, ordered by numeric index

  /// Reads a CSV file if it exists. Records that cannot be read are left out and their line numbers added
  /// to `set_aside` (when given); a file without a header holding `index`, or with a quote that runs over
  /// several lines to the end, throws ResultsError. A complete last record without a final newline is kept.
  static RecordTable load(const std::string& path, std::vector<int>* set_aside = nullptr);
  /// Adds `r`, replacing an earlier record with the same key; new columns are appended.
  void upsert(const Record& r);
  void add_columns(const std::vector<std::string>& cols);
  std::string to_csv() const;
  const Record* find(const std::string& key) const;
};

std::string record_key(const Record& r);

/// The value `record` holds for column `key` of the current results format (e.g. `effective_seed`, `loras`,
/// `requested_width`, `output_image`), read the way the record's own format wrote it: a record of the older format
/// (no `effective_seed` value) kept the effective settings without the `effective_` prefix and had no LoRA and no
/// requested size (read as empty). nullopt when the record has no such column at all.
std::optional<std::string> recorded_setting(const Record& record, const std::string& key);

class Journal {
 public:
  /// Compacts `path` (if present) with `columns` added to its header and opens it for appending.
  Journal(std::string path, const std::vector<std::string>& columns);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  /// Appends one record (unknown keys are ignored, missing ones left empty) under the file lock, to the
  /// file as it is now; throws std::runtime_error naming the file when it cannot (the row then counts as
  /// not done, and a later run redoes it).
  void append(const Record& r);
  /// Ends appending; a later compaction or merge dedupes.
  void close();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> columns_;
  bool closed_ = false;
  std::mutex mu_;
};

/// Holds `<journal>.run.lock` (flock) for the life of a run; the kernel releases it when the process ends,
/// however it ends. Throws ResultsError naming the holder when another process has it.
class RunLock {
 public:
  explicit RunLock(const std::string& journal_path);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

 private:
  int fd_ = -1;
};

/// results.csv and every shard journal beside it, merged in memory (nothing is written): what is done.
/// Throws ResultsError for a file that cannot be trusted.
RecordTable read_journals(const std::string& path);

/// Names, sizes and modification times of `path` and its shard journals: equal values mean nothing was
/// recorded in between.
std::string journals_state(const std::string& path);

/// `path` and the shard journals beside it (`<stem>.shard-R-of-N<ext>`), in a stable order.
std::vector<std::string> journal_files(const std::string& path);

/// The journal file of a shard: `path` itself for a single shard, else `<stem>.shard-R-of-N<ext>`.
std::string shard_journal_path(const std::string& path, int rank, int count);

/// Merges `path` and every `<stem>.shard-*-of-*<ext>` beside it into `path` (atomically, under the file lock
/// `path.lock`). Records with the same key keep the one with the latest `finished_at`. When `successes` is
/// given, a failure is dropped when that table holds the key and `is_done` (when given) says the success's row
/// is done (its image exists): failures.csv never lists a row that is done, and keeps one whose image is gone.
RecordTable merge_journals(const std::string& path, const RecordTable* successes = nullptr,
                           const std::function<bool(const Record&)>& is_done = nullptr);

}  // namespace dg
