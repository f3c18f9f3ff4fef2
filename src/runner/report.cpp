// The report's page model and its files (include/diffgentor/report.hpp); the HTML is in report_html.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "diffgentor/fs.hpp"
#include "diffgentor/image_io.hpp"
#include "diffgentor/plan.hpp"
#include "diffgentor/report.hpp"
#include "diffgentor/resize.hpp"

namespace fs = std::filesystem;

namespace dg {

namespace {

std::string field(const Record& r, const std::string& key) {
  const auto it = r.find(key);
  return it == r.end() ? std::string() : it->second;
}

// The first non-empty of the keys (an older results file kept the effective values under the plain names).
std::string first_of(const Record& r, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (std::string v = field(r, k); !v.empty()) return v;
  return "";
}

double number(const std::string& s) {
  try {
    return s.empty() ? 0.0 : std::stod(s);
  } catch (const std::exception&) {
    return 0.0;
  }
}

// "2026-12-01T00:09:53.474Z" (utc_now's format) -> seconds since the epoch; nullopt for anything else.
std::optional<double> epoch_seconds(const std::string& s) {
  std::tm tm{};
  double frac = 0;
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                  &tm.tm_sec, &consumed) != 6)
    return std::nullopt;
  if (static_cast<std::size_t>(consumed) < s.size() && s[static_cast<std::size_t>(consumed)] == '.')
    frac = number("0" + s.substr(static_cast<std::size_t>(consumed), s.find('Z') - static_cast<std::size_t>(consumed)));
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<double>(timegm(&tm)) + frac;
}

// A record's input images when the manifest is not given (with it, interpret_row reads them): the first non-empty of
// the manifest's image columns, a JSON list or one path, as written (relative to where the run was started).
std::vector<std::string> inputs_of(const Record& r) {
  std::string raw;
  for (const char* c : {"input_images", "image_url", "image"})
    if (raw = field(r, c); !raw.empty()) break;
  std::vector<std::string> out;
  if (!raw.empty() && raw.front() == '[') {
    const nlohmann::json list = nlohmann::json::parse(raw, nullptr, false);
    if (list.is_array())
      for (const auto& item : list)
        if (item.is_string()) out.push_back(item.get<std::string>());
  } else if (!raw.empty()) {
    out.push_back(raw);
  }
  return out;
}

std::string most_frequent(const std::map<std::string, std::size_t>& counts) {
  std::string best;
  std::size_t n = 0;
  for (const auto& [value, count] : counts)
    if (count > n) best = value, n = count;
  return best;
}

}  // namespace

ReportModel make_report_model(const RecordTable& results, const RecordTable& failures, const Manifest* manifest,
                              const ReportOptions& o) {
  ReportModel m;
  std::map<int64_t, const ManifestRow*> manifest_rows;
  if (manifest)
    for (const auto& row : manifest->rows) manifest_rows.emplace(row.index, &row);
  std::map<std::string, std::size_t> names, types, steps, guidance, true_cfg;
  std::optional<double> first, last;
  std::set<std::string> done;
  std::vector<ReportRow> rows;
  for (const Record& r : results.records) {
    const std::string key = record_key(r);
    done.insert(key);
    ReportRow row;
    row.index = static_cast<int64_t>(number(key));
    const auto in_manifest = manifest_rows.find(row.index);
    row.inputs =
        in_manifest != manifest_rows.end() ? interpret_row(*manifest, *in_manifest->second).images : inputs_of(r);
    row.output = field(r, "output_image");
    row.instruction = field(r, o.instruction_key);
    if (!field(r, "enhance_status").empty()) row.enhanced = field(r, "instruction_enhanced");
    row.seed = first_of(r, {"effective_seed", "seed"});
    const std::string w = first_of(r, {"effective_width", "width"}), h = first_of(r, {"effective_height", "height"});
    if (!w.empty() && !h.empty()) row.size = w + "x" + h;
    row.model_s = number(field(r, "time_model_s"));
    rows.push_back(std::move(row));
    ++names[field(r, "model_name")];
    ++types[field(r, "model_type")];
    ++steps[first_of(r, {"effective_num_inference_steps", "num_inference_steps"})];
    ++guidance[first_of(r, {"effective_guidance_scale", "guidance_scale"})];
    ++true_cfg[first_of(r, {"effective_true_cfg_scale", "true_cfg_scale"})];
    if (field(r, "enhance_status").rfind("fallback", 0) == 0) ++m.enhance_fallbacks;
    if (const auto end = epoch_seconds(field(r, "finished_at"))) {
      const double start = *end - number(field(r, "time_total_s"));
      first = first ? std::min(*first, start) : start;
      last = last ? std::max(*last, *end) : *end;
    }
  }
  m.done = done.size();
  for (const Record& r : failures.records) {
    const std::string key = record_key(r);
    if (done.count(key)) continue;  // made since it failed
    ++m.failed;
    ReportRow row;
    row.failed = true;
    row.index = static_cast<int64_t>(number(key));
    row.output = field(r, "output_image");
    row.stage = field(r, "stage");
    row.reason = field(r, "reason");
    if (const auto it = manifest_rows.find(row.index); it != manifest_rows.end()) {
      const RowInput in = interpret_row(*manifest, *it->second);
      row.inputs = in.images;
      row.instruction = in.instruction;
    }
    if (const auto end = epoch_seconds(field(r, "finished_at"))) last = last ? std::max(*last, *end) : *end;
    rows.push_back(std::move(row));
  }
  if (manifest) {
    std::size_t pending = 0;
    for (const auto& [index, row] : manifest_rows) {
      const std::string key = std::to_string(index);
      if (!done.count(key) && !failures.find(key)) ++pending;
    }
    m.pending = pending;
  }
  m.model_name = most_frequent(names);
  m.model_type = most_frequent(types);
  m.steps = most_frequent(steps);
  m.guidance = most_frequent(guidance);
  m.true_cfg = most_frequent(true_cfg);
  if (first && last && *last > *first) {
    m.wall_s = *last - *first;
    m.rows_per_s = static_cast<double>(m.done) / m.wall_s;
  }
  std::sort(rows.begin(), rows.end(), [](const ReportRow& a, const ReportRow& b) { return a.index < b.index; });
  for (ReportRow& row : rows) {
    if (o.failed_only && !row.failed) continue;
    if (o.limit && static_cast<int>(m.rows.size()) >= *o.limit) break;
    m.rows.push_back(std::move(row));
  }
  return m;
}

ReportModel make_report_model(const ReportOptions& o) {
  EditOptions e;
  e.output_dir = o.output_dir;
  e.output_csv = o.output_csv;
  const std::string results_path = results_path_of(e);
  const RecordTable results = read_journals(results_path);
  const RecordTable failures = read_journals(failures_path_of(results_path));
  if (!o.input) return make_report_model(results, failures, nullptr, o);
  const Manifest manifest = load_manifest(*o.input, {o.instruction_key, std::nullopt});
  return make_report_model(results, failures, &manifest, o);
}

namespace {

// One thumbnail: `source` decoded, resized (Pillow-exact LANCZOS) to at most `size` px on its longest side, written as
// JPEG to `thumb`; kept when it is newer than its source. Returns whether the thumbnail exists afterwards.
bool make_thumb(const std::string& source, const fs::path& thumb, int size) {
  std::error_code ec;
  if (source.find("://") != std::string::npos || !fs::is_regular_file(source, ec)) return false;
  if (fs::exists(thumb, ec) && fs::last_write_time(thumb, ec) >= fs::last_write_time(source, ec)) return true;
  try {
    const Image img = decode_image(read_input_file(source, int64_t(512) << 20), int64_t(1) << 28);
    const double s = std::min(1.0, double(size) / std::max(img.width, img.height));
    const int w = std::max(1, static_cast<int>(std::lround(img.width * s)));
    const int h = std::max(1, static_cast<int>(std::lround(img.height * s)));
    const Image small = (w == img.width && h == img.height) ? img : resize_pil(img, w, h, ResampleFilter::Lanczos);
    write_file_atomic(thumb.string(), encode_image(small, ".jpg", {85, std::nullopt}));
    return true;
  } catch (const std::exception&) {  // unreadable: the card shows the path instead
    return false;
  }
}

}  // namespace

std::string write_report(const ReportOptions& o, const ReportModel& model) {
  const fs::path page = o.out ? fs::path(*o.out) : fs::path(o.output_dir) / "report.html";
  const fs::path dir = page.parent_path().empty() ? fs::path(".") : page.parent_path();
  const fs::path files = dir / (page.stem().string() + "_files");
  fs::create_directories(files);
  // Links relative to the page, so that the page and the output folder can move together.
  const auto link = [&](const std::string& path) {
    if (path.find("://") != std::string::npos) return path;
    std::error_code ec;
    const fs::path rel = fs::relative(fs::absolute(path, ec), fs::absolute(dir, ec), ec);
    return ec || rel.empty() ? path : rel.string();
  };
  std::vector<CardFiles> cards(model.rows.size());
  std::vector<std::thread> workers;
  const unsigned n = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  for (unsigned t = 0; t < n; ++t)
    workers.emplace_back([&, t] {
      for (std::size_t k = t; k < model.rows.size(); k += n) {
        const ReportRow& row = model.rows[k];
        const auto one = [&](const std::string& source, const std::string& name) {
          return make_thumb(source, files / name, o.thumb_size) ? (fs::path(files.filename()) / name).string() : "";
        };
        CardFiles& c = cards[k];
        if (!row.output.empty() && !row.failed) {
          const std::string output = (fs::path(o.output_dir) / row.output).string();
          c.output_thumb = one(output, fmt::format("{}.jpg", row.index));
          c.output_link = link(output);
        }
        for (std::size_t i = 0; i < row.inputs.size(); ++i) {
          c.input_thumbs.push_back(one(row.inputs[i], fmt::format("{}_in{}.jpg", row.index, i)));
          c.input_links.push_back(link(row.inputs[i]));
        }
      }
    });
  for (auto& w : workers) w.join();
  write_file_atomic(page.string(), render_report_html(model, cards));
  return page.string();
}

}  // namespace dg
