// `diffgentor merge` and `diffgentor status` (include/diffgentor/scale_out.hpp, docs/scale-out.md).
#include "diffgentor/scale_out.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include "diffgentor/plan.hpp"
#include "diffgentor/results.hpp"
#include "diffgentor/selection.hpp"

namespace fs = std::filesystem;

namespace dg {

namespace {

// The columns that decide a row's image and where it went: two records of one row that differ in these were
// made by different runs. Each record is read in its own format (recorded_setting), so a record of an older version
// and one of this version that agree are not a conflict.
const char* const kDecisive[] = {"output_image",
                                 "model_type",
                                 "torch_dtype",
                                 "loras",
                                 "effective_seed",
                                 "effective_num_inference_steps",
                                 "effective_guidance_scale",
                                 "effective_true_cfg_scale",
                                 "effective_negative_prompt",
                                 "requested_width",
                                 "requested_height"};

void find_conflicts(const std::vector<std::string>& sources, std::vector<std::string>& out) {
  std::map<std::string, std::pair<std::string, Record>> first;  // key -> (file, record)
  std::set<std::string> reported;
  for (const auto& src : sources) {
    const RecordTable t = RecordTable::load(src);
    for (const auto& r : t.records) {
      const std::string key = record_key(r);
      auto [it, fresh] = first.emplace(key, std::make_pair(src, r));
      if (fresh || reported.count(key)) continue;
      for (const char* col : kDecisive) {
        const std::string va = recorded_setting(it->second.second, col).value_or(""),
                          vb = recorded_setting(r, col).value_or("");
        if (va == vb) continue;
        out.push_back(fmt::format("{} {}: {} and {} differ in {} ('{}' vs '{}'); kept the one finished last",
                                  r.count("index") ? "index" : "record", r.count("index") ? r.at("index") : key,
                                  fs::path(it->second.first).filename().string(), fs::path(src).filename().string(),
                                  col, va, vb));
        reported.insert(key);
        break;
      }
    }
  }
}

// The `*.lock` files directly in `dir`. When no process holds any of them, none is in use and all are removed;
// when one is held, a run is writing the folder and every lock file stays (removing one a process is about to
// lock would let two processes hold "the" lock), the held ones named.
void clear_locks(const fs::path& dir, MergeSummary& s) {
  std::error_code ec;
  std::vector<fs::path> locks;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".lock") == 0 && e.is_regular_file(ec))
      locks.push_back(e.path());
  }
  std::vector<int> fds;
  bool busy = false;
  for (const auto& path : locks) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
      fds.push_back(fd);
    } else {
      busy = true;
      s.held_locks.push_back(path.string());
      ::close(fd);
    }
  }
  for (std::size_t k = 0; k < locks.size() && !busy; ++k)
    if (fs::remove(locks[k], ec) && !ec) s.removed_locks.push_back(locks[k].string());
  for (int fd : fds) ::close(fd);  // held while removing, so nobody locked them in between
}

}  // namespace

MergeSummary merge_output(const std::string& results_path, const std::string& output_dir) {
  MergeSummary s;
  s.sources = journal_files(results_path);
  std::vector<std::string> present;
  for (const auto& src : s.sources)
    if (fs::exists(src)) present.push_back(src);
  s.sources = present;
  find_conflicts(s.sources, s.conflicts);
  const RecordTable merged = merge_journals(results_path);
  const fs::path out(output_dir);
  const RecordTable failures = merge_journals(failures_path_of(results_path), &merged, [&](const Record& done) {
    auto it = done.find("output_image");
    std::error_code ec;
    return it != done.end() && fs::is_regular_file(out / it->second, ec);
  });
  s.results = merged.records.size();
  s.failures = failures.records.size();
  clear_locks(out, s);
  const fs::path rdir = fs::path(results_path).parent_path();
  std::error_code ec;
  if (!rdir.empty() && !fs::equivalent(rdir, out, ec)) clear_locks(rdir, s);
  return s;
}

std::vector<ShardStatus> shard_status(const EditOptions& options, const ModelSpec& spec, const EnvLookup& env) {
  const Shard whole = resolve_shard(options.node_rank, options.num_nodes, env);
  std::vector<ShardStatus> out;
  for (int rank = 0; rank < whole.count; ++rank) {
    EditOptions o = options;
    o.resume = true;  // what is done counts, whatever the run's own --no_resume
    o.node_rank = rank;
    o.num_nodes = whole.count;
    const Plan plan = make_plan(o, spec, env);
    const RecordTable failures = read_journals(plan.failures_path);
    ShardStatus st;
    st.rank = rank, st.count = whole.count;
    st.rows = plan.shard_rows.size();
    st.done = plan.shard_rows.size() - plan.todo.size();
    for (std::size_t pos : plan.todo)
      ++(failures.find(std::to_string(plan.shard_rows[pos].row->index)) ? st.failed : st.pending);
    out.push_back(st);
  }
  return out;
}

}  // namespace dg
