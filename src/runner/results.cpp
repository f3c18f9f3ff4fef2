#include "diffgentor/results.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>

#include "diffgentor/csv.hpp"
#include "diffgentor/fs.hpp"

namespace fs = std::filesystem;

namespace dg {

std::string record_key(const Record& r) {
  auto it = r.find("index");
  if (it != r.end() && !it->second.empty()) return it->second;
  auto ln = r.find("line");
  return "line:" + (ln == r.end() ? std::string() : ln->second);
}

std::optional<std::string> recorded_setting(const Record& record, const std::string& key) {
  const std::string prefix = "effective_";
  const auto seed = record.find("effective_seed");
  const bool legacy = seed == record.end() || seed->second.empty();
  if (legacy && (key == "loras" || key == "requested_width" || key == "requested_height")) return std::string();
  const auto it = record.find(legacy && key.rfind(prefix, 0) == 0 ? key.substr(prefix.size()) : key);
  if (it == record.end()) return std::nullopt;
  return it->second;
}

namespace {

// Numeric indices first in numeric order, then `line:N` keys.
bool key_less(const std::string& a, const std::string& b) {
  const bool la = a.rfind("line:", 0) == 0, lb = b.rfind("line:", 0) == 0;
  if (la != lb) return lb;
  try {
    std::size_t ua = 0, ub = 0;
    const long long x = std::stoll(la ? a.substr(5) : a, &ua), y = std::stoll(lb ? b.substr(5) : b, &ub);
    if (x != y) return x < y;
  } catch (const std::exception&) {
  }
  return a < b;
}

}  // namespace

RecordTable RecordTable::load(const std::string& path, std::vector<int>* set_aside) {
  RecordTable t;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return t;
  const std::string text = read_file_bytes(path);
  auto recs = parse_csv(text);
  if (recs.empty()) return t;
  const auto untrusted = [&](int line, const std::string& why) {
    return ResultsError(
        fmt::format("{}, line {}: {}; diffgentor does not rewrite a results file it cannot read: "
                    "repair it, or move it away to start a new one",
                    path, line, why));
  };
  if (!recs[0].error.empty()) throw untrusted(1, "the header line is malformed (" + recs[0].error + ")");
  t.columns = recs[0].fields;
  if (std::find(t.columns.begin(), t.columns.end(), "index") == t.columns.end())
    throw untrusted(1, "the first line is not a header with an 'index' column");
  for (std::size_t k = 1; k < recs.size(); ++k) {
    const CsvRecord& rec = recs[k];
    if (rec.error == "unterminated quoted field" && rec.fields.back().find('\n') != std::string::npos)
      throw untrusted(rec.line, "a quote opened here is never closed, so every later line would be part of it");
    if (!rec.error.empty() || rec.fields.size() != t.columns.size()) {  // a torn line, a row missing fields
      if (set_aside) set_aside->push_back(rec.line);
      continue;
    }
    Record r;
    for (std::size_t c = 0; c < t.columns.size(); ++c) r[t.columns[c]] = rec.fields[c];
    t.upsert(r);
  }
  return t;
}

void RecordTable::add_columns(const std::vector<std::string>& cols) {
  for (const auto& c : cols)
    if (std::find(columns.begin(), columns.end(), c) == columns.end()) columns.push_back(c);
}

void RecordTable::upsert(const Record& r) {
  for (const auto& [k, v] : r) add_columns({k});
  const std::string key = record_key(r);
  auto pos = std::lower_bound(records.begin(), records.end(), key,
                              [](const Record& a, const std::string& k) { return key_less(record_key(a), k); });
  if (pos != records.end() && record_key(*pos) == key)
    *pos = r;
  else
    records.insert(pos, r);
}

const Record* RecordTable::find(const std::string& key) const {
  auto pos = std::lower_bound(records.begin(), records.end(), key,
                              [](const Record& a, const std::string& k) { return key_less(record_key(a), k); });
  return pos != records.end() && record_key(*pos) == key ? &*pos : nullptr;
}

std::string RecordTable::to_csv() const {
  std::string out = csv_line(columns);
  std::vector<std::string> fields(columns.size());
  for (const auto& r : records) {
    for (std::size_t c = 0; c < columns.size(); ++c) {
      auto it = r.find(columns[c]);
      fields[c] = it == r.end() ? "" : it->second;
    }
    out += csv_line(fields);
  }
  return out;
}

namespace {

struct FileLock {
  int fd = -1;
  explicit FileLock(const std::string& path) {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error(fmt::format("cannot open the lock file {}: {}", path, std::strerror(errno)));
    int rc;
    while ((rc = ::flock(fd, LOCK_EX)) != 0 && errno == EINTR) {
    }
    if (rc != 0) {
      const int err = errno;
      ::close(fd);
      throw std::runtime_error(fmt::format("cannot lock {}: {}", path, std::strerror(err)));
    }
  }
  ~FileLock() { ::close(fd); }  // releases the lock
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
};

std::string utc_stamp() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

// Loads `path` for a rewrite: what cannot be read is kept in a copy of the whole file and named in a warning.
RecordTable load_for_rewrite(const std::string& path) {
  std::vector<int> set_aside;
  RecordTable t = RecordTable::load(path, &set_aside);
  if (!set_aside.empty()) {
    std::string copy = fmt::format("{}.{}.corrupt", path, utc_stamp());
    for (int k = 1; fs::exists(copy); ++k) copy = fmt::format("{}.{}-{}.corrupt", path, utc_stamp(), k);
    write_file_atomic(copy, read_file_bytes(path));
    spdlog::warn(
        "{}: line(s) {} are not complete records; the file as it was is kept in {}, and those rows count "
        "as not done",
        path, fmt::join(set_aside, ", "), copy);
  }
  return t;
}

// Appends `bytes` to `path` (created when missing) with O_APPEND, so it lands at the end of the file as it is.
// A write that fails part-way (a full disk) is cut back off, so no partial line is left for the next append to
// be glued onto. The caller holds the file's lock.
void append_bytes(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot open {} for appending: {}", path, std::strerror(errno)));
  struct stat before {};
  ::fstat(fd, &before);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : ENOSPC;
      if (done > 0) {
        [[maybe_unused]] const int cut = ::ftruncate(fd, before.st_size);
      }
      ::close(fd);
      throw std::runtime_error(fmt::format("cannot append to {}: {}", path, std::strerror(err)));
    }
    done += static_cast<std::size_t>(w);
  }
  if (::close(fd) != 0) throw std::runtime_error(fmt::format("cannot append to {}: {}", path, std::strerror(errno)));
}

std::string first_line(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

}  // namespace

Journal::Journal(std::string path, const std::vector<std::string>& columns) : path_(std::move(path)) {
  const fs::path p(path_);
  std::error_code ec;
  if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
  FileLock lock(path_ + ".lock");
  RecordTable t = load_for_rewrite(path_);
  t.add_columns(columns);
  columns_ = t.columns;
  write_file_atomic(path_, t.to_csv());
}

Journal::~Journal() { close(); }

void Journal::append(const Record& r) {
  std::lock_guard<std::mutex> guard(mu_);
  if (closed_) return;
  FileLock lock(path_ + ".lock");
  std::string header = csv_line(columns_);
  header.pop_back();
  if (first_line(path_) != header) {  // another process rewrote the file with other columns: rewrite it too
    RecordTable t = load_for_rewrite(path_);
    t.add_columns(columns_);
    Record known;
    for (const auto& c : columns_)
      if (auto it = r.find(c); it != r.end()) known[c] = it->second;
    t.upsert(known);
    columns_ = t.columns;
    write_file_atomic(path_, t.to_csv());
    return;
  }
  std::vector<std::string> fields(columns_.size());
  for (std::size_t c = 0; c < columns_.size(); ++c) {
    auto it = r.find(columns_[c]);
    if (it != r.end()) fields[c] = it->second;
  }
  append_bytes(path_, csv_line(fields));
}

void Journal::close() {
  std::lock_guard<std::mutex> guard(mu_);
  closed_ = true;
}

RunLock::RunLock(const std::string& journal_path) {
  const std::string path = journal_path + ".run.lock";
  const fs::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw ResultsError(fmt::format("cannot open {}: {}", path, std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const std::string holder = read_file_bytes(path);
    ::close(fd_);
    fd_ = -1;
    throw ResultsError(
        fmt::format("another diffgentor run ({}) is writing {} right now (it holds {}); wait for it "
                    "to end, or give this run another --output_dir",
                    holder.empty() ? std::string("pid unknown") : holder, journal_path, path));
  }
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string me = fmt::format("pid {} on {}, since {} UTC", ::getpid(), host, utc_stamp());
  if (::ftruncate(fd_, 0) == 0) {
    [[maybe_unused]] const auto n = ::pwrite(fd_, me.data(), me.size(), 0);
  }
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);
}

std::string shard_journal_path(const std::string& path, int rank, int count) {
  if (count <= 1) return path;
  const fs::path p(path);
  return (p.parent_path() / fmt::format("{}.shard-{}-of-{}{}", p.stem().string(), rank, count, p.extension().string()))
      .string();
}

namespace {}  // namespace

std::vector<std::string> journal_files(const std::string& path) {
  const fs::path p(path);
  std::error_code ec;
  std::vector<std::string> sources{path};
  const std::string prefix = p.stem().string() + ".shard-", ext = p.extension().string();
  const fs::path dir = p.has_parent_path() ? p.parent_path() : fs::path(".");
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0 && name.size() > ext.size() &&
        name.compare(name.size() - ext.size(), ext.size(), ext) == 0 && name.find("-of-") != std::string::npos)
      sources.push_back(e.path().string());
  }
  std::sort(sources.begin() + 1, sources.end());
  return sources;
}

namespace {

// `path` and its shard journals, merged by key (the latest finished_at wins); for a rewrite when `rewrite`.
RecordTable collect_journals(const std::string& path, bool rewrite) {
  RecordTable merged;
  for (const auto& src : journal_files(path)) {
    RecordTable t = rewrite && src == path ? load_for_rewrite(src) : RecordTable::load(src);
    merged.add_columns(t.columns);
    for (const auto& r : t.records) {
      const Record* old = merged.find(record_key(r));
      if (old && old->count("finished_at") && r.count("finished_at") && old->at("finished_at") > r.at("finished_at"))
        continue;
      merged.upsert(r);
    }
  }
  return merged;
}

}  // namespace

RecordTable read_journals(const std::string& path) { return collect_journals(path, false); }

std::string journals_state(const std::string& path) {
  std::string out;
  for (const auto& src : journal_files(path)) {
    struct stat st {};
    if (::stat(src.c_str(), &st) == 0)
      out += fmt::format("{} {} {}.{}\n", src, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  }
  return out;
}

RecordTable merge_journals(const std::string& path, const RecordTable* successes,
                           const std::function<bool(const Record&)>& is_done) {
  const fs::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
  FileLock guard(path + ".lock");
  RecordTable merged = collect_journals(path, true);
  if (successes) {
    RecordTable kept;
    kept.columns = merged.columns;
    for (const auto& r : merged.records) {
      const Record* success = successes->find(record_key(r));
      if (!success || (is_done && !is_done(*success))) kept.records.push_back(r);
    }
    merged = std::move(kept);
  }
  write_file_atomic(path, merged.to_csv());
  return merged;
}

}  // namespace dg
