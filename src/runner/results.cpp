#include "diffgentor/results.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
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

RecordTable RecordTable::load(const std::string& path) {
  RecordTable t;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return t;
  std::string text = read_file_bytes(path);
  if (!text.empty() && text.back() != '\n') {  // torn last line from a crash mid-append
    const auto nl = text.rfind('\n');
    text.erase(nl == std::string::npos ? 0 : nl + 1);
  }
  auto recs = parse_csv(text);
  if (recs.empty()) return t;
  t.columns = recs[0].fields;
  for (std::size_t k = 1; k < recs.size(); ++k) {
    if (!recs[k].error.empty() || recs[k].fields.size() != t.columns.size()) continue;
    Record r;
    for (std::size_t c = 0; c < t.columns.size(); ++c) r[t.columns[c]] = recs[k].fields[c];
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

Journal::Journal(std::string path, const std::vector<std::string>& columns) : path_(std::move(path)) {
  RecordTable t = RecordTable::load(path_);
  t.add_columns(columns);
  columns_ = t.columns;
  write_file_atomic(path_, t.to_csv());
  file_ = std::fopen(path_.c_str(), "ab");
  if (!file_) throw std::runtime_error(fmt::format("cannot open {} for appending: {}", path_, std::strerror(errno)));
}

Journal::~Journal() { close(); }

void Journal::append(const Record& r) {
  std::vector<std::string> fields(columns_.size());
  for (std::size_t c = 0; c < columns_.size(); ++c) {
    auto it = r.find(columns_[c]);
    if (it != r.end()) fields[c] = it->second;
  }
  const std::string line = csv_line(fields);
  std::lock_guard<std::mutex> lock(mu_);
  if (!file_) return;
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw std::runtime_error(fmt::format("cannot append to {}: {}", path_, std::strerror(errno)));
}

void Journal::close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (file_) std::fclose(file_);
  file_ = nullptr;
}

std::string shard_journal_path(const std::string& path, int rank, int count) {
  if (count <= 1) return path;
  const fs::path p(path);
  return (p.parent_path() / fmt::format("{}.shard-{}-of-{}{}", p.stem().string(), rank, count, p.extension().string()))
      .string();
}

namespace {

struct FileLock {
  int fd = -1;
  explicit FileLock(const std::string& path) {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) ::flock(fd, LOCK_EX);
  }
  ~FileLock() {
    if (fd >= 0) ::close(fd);  // releases the lock
  }
};

}  // namespace

RecordTable merge_journals(const std::string& path, const RecordTable* successes, bool lock) {
  const fs::path p(path);
  std::error_code ec;
  if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
  std::optional<FileLock> guard;
  if (lock) guard.emplace(path + ".lock");
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
  RecordTable merged;
  for (const auto& src : sources) {
    RecordTable t = RecordTable::load(src);
    merged.add_columns(t.columns);
    for (const auto& r : t.records) {
      const Record* old = merged.find(record_key(r));
      if (old && old->count("finished_at") && r.count("finished_at") && old->at("finished_at") > r.at("finished_at"))
        continue;
      merged.upsert(r);
    }
  }
  if (successes) {
    RecordTable kept;
    kept.columns = merged.columns;
    for (const auto& r : merged.records) {
      const Record* done = successes->find(record_key(r));
      const auto at = [](const Record* x) {
        auto it = x->find("finished_at");
        return it == x->end() ? std::string() : it->second;
      };
      if (done && at(done) >= at(&r)) continue;
      kept.records.push_back(r);
    }
    merged = std::move(kept);
  }
  write_file_atomic(path, merged.to_csv());
  return merged;
}

}  // namespace dg
