#include "diffgentor/runner.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <exception>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "diffgentor/fs.hpp"
#include "diffgentor/http.hpp"
#include "diffgentor/image_io.hpp"
#include "diffgentor/image_metadata.hpp"
#include "diffgentor/progress.hpp"
#include "diffgentor/queue.hpp"
#include "diffgentor/results.hpp"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace dg {

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Work {
  PlannedRow* row = nullptr;
  EditRequest request;
  EditResult result;
  std::string fail_stage, fail_reason;
  std::optional<EnhanceOutcome> enhanced;
  int attempts = 0;
  std::string batch;       ///< the indices of the rows it ran with (itself included), ';'-separated
  std::string loras;       ///< the LoRA set it runs with, as results.csv's `loras` column (row_loras)
  bool abandoned = false;  ///< cut short by a stop request: neither done nor failed, left for a later run
  double t_prepare = 0, t_model = 0, t_enhance = 0;
  Clock::time_point started;
};

const std::vector<std::string> kResultColumns = {"index",
                                                 "output_image",
                                                 "model_name",
                                                 "model_type",
                                                 "torch_dtype",
                                                 "loras",
                                                 "effective_seed",
                                                 "base_seed",
                                                 "effective_num_inference_steps",
                                                 "effective_guidance_scale",
                                                 "effective_true_cfg_scale",
                                                 "effective_negative_prompt",
                                                 "requested_width",
                                                 "requested_height",
                                                 "effective_width",
                                                 "effective_height",
                                                 "instruction_enhanced",
                                                 "enhance_status",
                                                 "attempts",
                                                 "batch",
                                                 "time_prepare_s",
                                                 "time_enhance_s",
                                                 "time_model_s",
                                                 "time_write_s",
                                                 "time_total_s",
                                                 "stage_times",
                                                 "counters",
                                                 "finished_at"};
// The results.csv name of a manifest column: its own, unless the run writes a column of that name (a results.csv
// fed back as a manifest, a user's `loras` column), in which case it keeps its value as manifest_<name>.
std::string results_name_of(const std::string& column) {
  const bool clash =
      column != "index" && std::find(kResultColumns.begin(), kResultColumns.end(), column) != kResultColumns.end();
  return clash ? "manifest_" + column : column;
}

const std::vector<std::string> kFailureColumns = {"index",  "line",     "output_image", "stage",
                                                  "reason", "attempts", "finished_at"};

// Reads, downloads and decodes one row's inputs. Sets fail_stage/fail_reason instead of throwing.
void prepare(Work& w, const Plan& plan, const EditOptions& o, const HttpOptions& http, const PromptEnhancer* enhancer) {
  const auto t0 = Clock::now();
  PlannedRow& pr = *w.row;
  if (!pr.problems.empty()) {
    w.fail_stage = "input";
    w.fail_reason = fmt::format("{}", fmt::join(pr.problems, "; "));
    return;
  }
  const std::string& col = pr.input.image_column;
  for (std::size_t k = 0; k < pr.input.images.size(); ++k) {
    const std::string& ref = pr.input.images[k];
    const std::string where = fmt::format("{}[{}] {}", col, k, ref);
    std::string bytes;
    bool cached = false;
    try {
      bytes = is_url(ref) ? fetch_url(ref, http, &cached) : read_input_file(ref, http.max_bytes);
    } catch (const std::exception& e) {
      w.fail_stage = is_url(ref) ? "download" : "read";
      w.fail_reason = fmt::format("{}: {}", where, e.what());
      w.abandoned = http.stop && http.stop->load();  // a download ended by the stop request is not a failure
      return;
    }
    try {
      w.request.images.push_back(decode_image(bytes, o.max_image_pixels));
    } catch (const std::exception& e) {
      if (cached) cache_forget(ref, http);  // a bad body from an older cache: fetched afresh next time
      w.fail_stage = "decode";
      w.fail_reason = fmt::format("{}: {}", where, e.what());
      return;
    }
    if (is_url(ref) && !cached) cache_store(ref, bytes, http);  // only bodies that decode are cached
    const Image& img = w.request.images.back();
    if (const std::string why = image_size_problem(*plan.spec, img.width, img.height); !why.empty()) {
      w.fail_stage = "input";  // the model's per-image rule: fails here, before the model stage
      w.fail_reason = fmt::format("{}: {}", where, why);
      return;
    }
  }
  w.request.index = pr.row->index;
  w.request.instruction = pr.input.instruction;
  w.request.seed = pr.seed;
  w.request.params = row_params(plan, pr);
  w.request.loras = pr.input.loras;
  w.loras = row_loras(plan, pr);
  if (enhancer) {  // in the prepare stage, several rows at a time, so the model never waits on the API
    const auto te = Clock::now();
    w.enhanced = enhancer->enhance(pr.row->index, w.request.instruction, w.request.images);
    w.request.instruction = w.enhanced->instruction;
    w.t_enhance = since(te);
  }
  w.t_prepare = since(t0);
}

// Runs one item through the pipeline with retries; a later attempt repeats the whole row.
// Records an attempt's failure on `w`; returns whether another attempt may succeed.
bool record_failure(Work& w, const std::exception_ptr& error) {
  w.fail_stage = "model";
  try {
    std::rethrow_exception(error);
  } catch (const InputError& e) {  // would fail the same way again: not retried
    w.fail_stage = "input";
    w.fail_reason = e.what();
    return false;
  } catch (const RepeatableError& e) {  // the same request repeats it exactly: not retried either
    w.fail_reason = e.what();
    return false;
  } catch (const std::exception& e) {
    w.fail_reason = e.what();
  } catch (...) {
    w.fail_reason = "unknown exception";
  }
  return true;
}

// Runs one item through the pipeline with retries, from attempt `first` (a row whose batched attempt failed goes
// on from 2); a later attempt repeats the whole row.
void run_one(Work& w, Pipeline& pipe, int max_retries, const std::atomic<bool>& stop, int first = 1) {
  for (int attempt = first; attempt <= max_retries + 1; ++attempt) {
    w.attempts = attempt;
    const auto t0 = Clock::now();
    try {
      w.result = pipe.edit(w.request);
      w.t_model = since(t0);
      w.fail_stage.clear();
      return;
    } catch (...) {
      if (!record_failure(w, std::current_exception())) return;
    }
    if (attempt <= max_retries && stop) {  // no new attempt after a stop request: the row is left for later
      w.abandoned = true;
      return;
    }
    if (attempt <= max_retries)
      spdlog::warn("index {}: attempt {} of {} failed: {}", w.request.index, attempt, max_retries + 1, w.fail_reason);
  }
}

// What made a finished row's image, for the metadata embedded in it.
ImageParameters image_parameters(const Plan& plan, const EditOptions& o, const Work& w) {
  ImageParameters p;
  p.instruction = w.row->input.instruction;
  if (w.enhanced && w.enhanced->ok()) p.enhanced = w.enhanced->instruction;
  const EffectiveParams& e = w.request.params;
  p.negative = e.negative_prompt;
  p.steps = e.steps;
  p.guidance = e.guidance;
  p.true_cfg = e.true_cfg;
  p.seed = w.request.seed;
  p.width = w.result.image.width;
  p.height = w.result.image.height;
  p.model = o.model_name;
  p.model_type = plan.spec->type;
  p.version = DG_VERSION;
  p.loras = w.loras;
  return p;
}

// Rows that can share model invocations (docs/batching.md): the same number and sizes of inputs, steps and guidance
// settings give the same output size and the same sequence of calls, and the same LoRA set the same weights. Rows of
// other keys run in batches of their own.
std::string batch_key(const Work& w) {
  const EditRequest& r = w.request;
  std::string key =
      fmt::format("{}|{}|{}|{}|{}x{}", r.params.steps, r.params.guidance, r.params.true_cfg.value_or(-1),
                  r.params.negative_prompt.has_value(), r.params.width.value_or(0), r.params.height.value_or(0));
  for (const Image& img : r.images) key += fmt::format("|{}x{}", img.width, img.height);
  return key + "|" + w.loras;
}

// Runs the rows a replica took: grouped by batch_key, each group of two or more through Pipeline::edit_batch, the
// rest (and a grouped row that failed, with its retries) one by one. Records in `batch` the rows each ran with.
void run_model_batch(std::vector<Work>& batch, Pipeline& pipe, int max_retries, const std::atomic<bool>& stop) {
  std::vector<std::vector<Work*>> groups;
  std::map<std::string, std::size_t> group_of;
  for (auto& w : batch) {
    const auto [it, added] = group_of.emplace(batch_key(w), groups.size());
    if (added) groups.emplace_back();
    groups[it->second].push_back(&w);
  }
  for (auto& group : groups) {
    std::sort(group.begin(), group.end(),
              [](const Work* a, const Work* b) { return a->request.index < b->request.index; });
    if (stop) return;  // rows not started stay for a later run (the caller drops them)
    std::vector<std::string> indices;
    for (const Work* w : group) indices.push_back(std::to_string(w->request.index));
    const std::string members = fmt::format("{}", fmt::join(indices, ";"));
    for (Work* w : group) w->batch = members;
    if (group.size() == 1) {
      run_one(*group[0], pipe, max_retries, stop);
      continue;
    }
    std::vector<EditRequest> reqs;
    for (const Work* w : group) reqs.push_back(w->request);
    const auto t0 = Clock::now();
    std::vector<BatchOutcome> outcomes = pipe.edit_batch(reqs);
    const double t = since(t0) / double(group.size());
    for (std::size_t k = 0; k < group.size(); ++k) {
      Work& w = *group[k];
      if (k < outcomes.size() && !outcomes[k].error) {
        w.result = std::move(outcomes[k].result), w.t_model = t, w.attempts = 1;
        continue;
      }
      // Its batched attempt failed (alone: the others' results stand): retried alone if the failure allows it.
      w.attempts = 1;
      if (!record_failure(w, k < outcomes.size()
                                 ? outcomes[k].error
                                 : std::make_exception_ptr(std::runtime_error("the pipeline returned no result"))) ||
          max_retries == 0)
        continue;
      if (stop) {
        w.abandoned = true;
        continue;
      }
      spdlog::warn("index {}: attempt 1 of {} failed: {}", w.request.index, max_retries + 1, w.fail_reason);
      w.batch = std::to_string(w.request.index);  // its result comes from running alone
      run_one(w, pipe, max_retries, stop, 2);
    }
  }
}

}  // namespace

RunSummary run_batch(Plan& plan, const EditOptions& o, const std::vector<Pipeline*>& replicas,
                     const std::atomic<bool>& stop, const PromptEnhancer* enhancer, LiveCounts* live,
                     EventLog* events) {
  RunSummary summary;
  const std::size_t total = plan.todo.size();
  const int removed = remove_stale_temp_files(plan.output_dir);
  if (removed) spdlog::info("removed {} leftover temporary file(s) from an earlier run", removed);

  std::vector<std::string> result_cols;
  for (const auto& c : plan.manifest.columns) result_cols.push_back(results_name_of(c));
  for (const auto& c : kResultColumns)
    if (std::find(result_cols.begin(), result_cols.end(), c) == result_cols.end()) result_cols.push_back(c);
  const std::string results_journal = shard_journal_path(plan.results_path, plan.shard.rank, plan.shard.count);
  const std::string failures_journal = shard_journal_path(plan.failures_path, plan.shard.rank, plan.shard.count);
  auto results = std::make_unique<Journal>(results_journal, result_cols);
  auto failures = std::make_unique<Journal>(failures_journal, kFailureColumns);

  HttpOptions http;
  http.timeout_s = o.download_timeout;
  http.retries = o.download_retries;
  http.cache_dir = o.image_cache_dir;
  http.stop = &stop;

  BoundedQueue<Work> to_model(static_cast<std::size_t>(o.prefetch));
  BoundedQueue<Work> to_write(static_cast<std::size_t>(o.prefetch) + replicas.size() * o.batch_size);

  Progress progress(total, o.progress == "bar");

  // Stage 1: prepare.
  std::atomic<std::size_t> next{0};
  const int workers = enhancer ? std::max(o.prefetch, enhancer->config().concurrency) : o.prefetch;
  std::atomic<int> preparers_left{static_cast<int>(std::min<std::size_t>(workers, std::max<std::size_t>(total, 1)))};
  std::vector<std::thread> threads;
  const int n_prepare = preparers_left.load();
  for (int t = 0; t < n_prepare; ++t) {
    threads.emplace_back([&] {
      for (;;) {
        const std::size_t k = next++;
        if (k >= total || stop) break;
        Work w;
        w.started = Clock::now();
        w.row = &plan.shard_rows[plan.todo[k]];
        prepare(w, plan, o, http, enhancer);
        if (!to_model.push(std::move(w))) break;
      }
      if (--preparers_left == 0) to_model.close();
    });
  }

  // Stage 2: model, one thread per replica.
  std::atomic<int> models_left{static_cast<int>(replicas.size())};
  for (Pipeline* pipe : replicas) {
    threads.emplace_back([&, pipe] {
      while (auto first = to_model.pop()) {
        std::vector<Work> batch, done;
        auto route = [&](Work&& w) { (w.fail_stage.empty() ? batch : done).push_back(std::move(w)); };
        route(std::move(*first));
        while (batch.size() < static_cast<std::size_t>(o.batch_size)) {  // a full batch unless the rows run out
          auto more = to_model.pop();
          if (!more) break;
          route(std::move(*more));
        }
        if (stop) batch.clear();  // interrupted: rows not started stay for a later run
        for (auto& w : batch) {
          const int64_t index = w.row->row->index;
          if (events)
            events->emit(
                "row_start",
                nlohmann::json{{"index", index}, {"images", w.request.images.size()}, {"batch", batch.size()}}.dump());
          w.request.on_step = [&progress, events, index](const std::string& phase, int step, int steps) {
            progress.row_step(index, phase, step, steps);
            if (events)
              events->emit("step",
                           nlohmann::json{{"index", index}, {"phase", phase}, {"step", step}, {"steps", steps}}.dump());
          };
        }
        if (!batch.empty()) run_model_batch(batch, *pipe, o.max_retries, stop);
        for (auto& w : batch) done.push_back(std::move(w));
        for (auto& w : done) to_write.push(std::move(w));
      }
      if (--models_left == 0) to_write.close();
    });
  }

  // Stage 3: write, on this thread.
  std::size_t finished = 0;
  while (auto item = to_write.pop()) {
    Work& w = *item;
    progress.row_left(w.row->row->index);
    if (w.abandoned || (w.attempts == 0 && w.fail_stage.empty())) continue;  // stopped before it finished
    PlannedRow& pr = *w.row;
    if (w.fail_stage.empty() && w.result.enhanced) {  // rewritten in the model stage (FLUX.2-dev upsampler)
      const EnhancedPrompt& e = *w.result.enhanced;
      w.enhanced = EnhanceOutcome{e.instruction, e.status};
      w.t_enhance = e.seconds;
      if (!w.enhanced->ok())
        spdlog::warn("index {}: prompt upsampling fell back to the original instruction: {}", pr.row->index,
                     e.status.substr(std::min<std::size_t>(10, e.status.size())));
    }
    const auto t0 = Clock::now();
    if (w.fail_stage.empty()) {
      try {
        const std::string ext = fs::path(pr.output_path).extension().string();
        std::string bytes = encode_image(w.result.image, ext, {o.jpeg_quality, o.webp_quality});
        if (o.metadata) bytes = embed_parameters(bytes, ext, parameters_text(image_parameters(plan, o, w)));
        write_file_atomic(pr.output_path, bytes);
      } catch (const std::exception& e) {
        w.fail_stage = "write";
        w.fail_reason = fmt::format("{}: {}", pr.output_path, e.what());
      }
    }
    const double t_write = since(t0), t_total = since(w.started);
    const std::string idx = std::to_string(pr.row->index);
    ++finished;
    try {
      if (w.fail_stage.empty()) {
        Record r;
        for (std::size_t c = 0; c < plan.manifest.columns.size(); ++c)
          r[results_name_of(plan.manifest.columns[c])] = pr.row->values[c];
        nlohmann::json stages = nlohmann::json::object();
        for (const auto& [name, secs] : w.result.stage_seconds) stages[name] = std::round(secs * 1e4) / 1e4;
        for (const auto& [key, value] : row_settings(plan, pr)) r[key] = value;  // what resume compares
        r["index"] = idx;
        r["output_image"] = pr.output.name;
        r["base_seed"] = std::to_string(plan.base_seed);
        r["model_name"] = o.model_name;
        r["effective_width"] = std::to_string(w.result.image.width);
        r["effective_height"] = std::to_string(w.result.image.height);
        r["instruction_enhanced"] = w.enhanced ? w.enhanced->instruction : "";
        r["enhance_status"] = w.enhanced ? w.enhanced->status : "";
        r["time_enhance_s"] = fmt::format("{:.4f}", w.t_enhance);
        r["attempts"] = std::to_string(w.attempts);
        r["batch"] = w.batch;
        r["time_prepare_s"] = fmt::format("{:.4f}", w.t_prepare);
        r["time_model_s"] = fmt::format("{:.4f}", w.t_model);
        r["time_write_s"] = fmt::format("{:.4f}", t_write);
        r["time_total_s"] = fmt::format("{:.4f}", t_total);
        r["stage_times"] = stages.dump();
        nlohmann::json counters = nlohmann::json::object();
        for (const auto& [name, n] : w.result.counters) {
          counters[name] = n;
          if (name == "device_peak_mib") summary.device_peak_mib = std::max(summary.device_peak_mib, n);
        }
        r["counters"] = counters.dump();
        r["finished_at"] = utc_now();
        results->append(r);
        ++summary.succeeded;
        if (w.enhanced && !w.enhanced->ok()) ++summary.enhance_fallbacks;
        if (live) ++live->succeeded;
        if (events)
          events->emit("row_done", nlohmann::json{{"index", pr.row->index},
                                                  {"output", pr.output_path},
                                                  {"width", w.result.image.width},
                                                  {"height", w.result.image.height},
                                                  {"attempts", w.attempts},
                                                  {"enhance_status", r["enhance_status"]},
                                                  {"time_prepare_s", w.t_prepare},
                                                  {"time_model_s", w.t_model},
                                                  {"time_write_s", t_write},
                                                  {"time_total_s", t_total}}
                                       .dump());
        progress.row_finished(true, fmt::format("[{}/{}] index {} ok {}x{} in {:.2f}s (prepare {:.2f}s, model {:.2f}s, "
                                                "write {:.2f}s) -> {}",
                                                finished, total, idx, w.result.image.width, w.result.image.height,
                                                t_total, w.t_prepare, w.t_model, t_write, pr.output_path));
      } else {
        failures->append({{"index", idx},
                          {"line", std::to_string(pr.row->line)},
                          {"output_image", pr.output.name},
                          {"stage", w.fail_stage},
                          {"reason", w.fail_reason},
                          {"attempts", std::to_string(w.attempts)},
                          {"finished_at", utc_now()}});
        ++summary.failed;
        if (live) ++live->failed;
        if (events)
          events->emit("row_failed", nlohmann::json{{"index", pr.row->index},
                                                    {"line", pr.row->line},
                                                    {"stage", w.fail_stage},
                                                    {"reason", w.fail_reason},
                                                    {"attempts", w.attempts}}
                                         .dump());
        progress.row_finished(
            false, fmt::format("[{}/{}] index {} FAILED at {}: {}", finished, total, idx, w.fail_stage, w.fail_reason));
      }
    } catch (const std::exception& e) {
      // The journal itself failed (disk full). The row counts as failed in this run's summary and exit code;
      // its image, if written, has no record, so the next run makes it again (a row is done only with both).
      ++summary.failed;  // the counters above are reached only after a successful append
      ++summary.unrecorded;
      if (live) ++live->failed;
      spdlog::error("index {}: cannot record the result ({}); a later run makes this row again", idx, e.what());
    }
  }
  for (auto& t : threads) t.join();
  summary.interrupted = stop.load();
  if (summary.interrupted) summary.not_run = total - summary.succeeded - summary.failed;

  // Rows whose identity could not be read are failures of this run too (never silently dropped).
  for (const auto& orphan : plan.shard.rank == 0 ? plan.manifest.orphans : std::vector<OrphanRecord>{}) {
    ++summary.failed;
    try {
      failures->append({{"line", std::to_string(orphan.line)},
                        {"stage", "input"},
                        {"reason", fmt::format("malformed record, index unreadable: {}", orphan.reason)},
                        {"finished_at", utc_now()}});
    } catch (const std::exception& e) {
      spdlog::error("line {}: cannot record the failure ({})", orphan.line, e.what());
    }
  }
  results->close();
  failures->close();
  // The journals hold every finished row already; a merge that fails (disk full) loses nothing: the next run
  // merges them. It is reported, and the run's summary and exit code still describe its rows.
  try {
    const RecordTable merged = merge_journals(plan.results_path);
    const fs::path out(plan.output_dir);
    merge_journals(plan.failures_path, &merged, [&](const Record& done) {
      auto it = done.find("output_image");
      std::error_code ec;
      return it != done.end() && fs::is_regular_file(out / it->second, ec);
    });
  } catch (const std::exception& e) {
    summary.merge_error = e.what();
    spdlog::error(
        "could not merge the results into {}: {}; every finished row is in the journals and the next run "
        "merges them",
        plan.results_path, e.what());
  }
  return summary;
}

}  // namespace dg
