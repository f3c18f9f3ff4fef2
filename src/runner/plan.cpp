#include "diffgentor/plan.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <map>
#include <optional>
#include <random>

#include "diffgentor/http.hpp"
#include "diffgentor/lora.hpp"

namespace fs = std::filesystem;

namespace dg {

std::string results_path_of(const EditOptions& o) {
  return o.output_csv ? *o.output_csv : (fs::path(o.output_dir) / "results.csv").string();
}

std::string failures_path_of(const std::string& results_path) {
  const fs::path rp(results_path);
  return (rp.parent_path() /
          (rp.stem() == "results" ? std::string("failures.csv") : rp.stem().string() + ".failures.csv"))
      .string();
}

EffectiveParams row_params(const Plan& plan, const PlannedRow& row) {
  ParamOverrides p = plan.overrides;
  const ParamOverrides& r = row.input.params;
  if (r.steps) p.steps = r.steps;
  if (r.guidance) p.guidance = r.guidance;
  if (r.true_cfg) p.true_cfg = r.true_cfg;
  if (r.negative_prompt) p.negative_prompt = r.negative_prompt;
  if (r.width) p.width = r.width;
  if (r.height) p.height = r.height;
  return merge_params(*plan.spec, p);
}

std::string lora_set_text(const std::vector<LoraSpec>& set) {
  std::vector<std::string> items;
  for (const LoraSpec& s : set) {
    std::error_code ec;  // one file named two ways (relative, absolute, through a link) is one setting
    const fs::path canonical = fs::weakly_canonical(s.path, ec);
    items.push_back(fmt::format("{}:{}", ec ? s.path : canonical.string(), s.scale));
  }
  return fmt::format("{}", fmt::join(items, ";"));
}

std::string row_loras(const Plan& plan, const PlannedRow& row) {
  return row.input.loras ? lora_set_text(*row.input.loras) : plan.loras;
}

Record row_settings(const Plan& plan, const PlannedRow& row) {
  const EffectiveParams p = row_params(plan, row);
  const auto side = [](const std::optional<int>& v) { return v ? std::to_string(*v) : std::string(); };
  return {{"model_type", plan.spec->type},
          {"torch_dtype", plan.torch_dtype},
          {"loras", row_loras(plan, row)},
          {"effective_seed", std::to_string(row.seed)},
          {"effective_num_inference_steps", std::to_string(p.steps)},
          {"effective_guidance_scale", fmt::format("{}", p.guidance)},
          {"effective_true_cfg_scale", p.true_cfg ? fmt::format("{}", *p.true_cfg) : ""},
          {"effective_negative_prompt", p.negative_prompt.value_or("")},
          {"requested_width", side(p.width)},
          {"requested_height", side(p.height)}};
}

namespace {

// What differs between a finished row's record and this run's settings for it ("" when nothing does). A
// column the record lacks is not compared. A record an older version wrote is read in its own format
// (recorded_setting: plain names, no LoRAs and no requested size).
std::string settings_difference(const Record& done, const Record& now) {
  std::vector<std::string> diffs;
  for (const auto& [key, value] : now) {
    const std::optional<std::string> recorded = recorded_setting(done, key);
    if (recorded && *recorded != value) diffs.push_back(fmt::format("{} '{}' -> '{}'", key, *recorded, value));
  }
  return fmt::format("{}", fmt::join(diffs, ", "));
}

}  // namespace

Plan make_plan(const EditOptions& o, const ModelSpec& spec, const EnvLookup& env) {
  Plan plan;
  plan.manifest = load_manifest(o.input, {o.instruction_key, o.output_name_column});
  plan.spec = &spec;
  plan.params = effective_params(spec, o);
  plan.overrides = param_overrides(o);
  plan.torch_dtype = o.torch_dtype;
  std::vector<LoraSpec> loras;
  for (const std::string& l : o.loras) loras.push_back(parse_lora_spec(l));
  plan.loras = lora_set_text(loras);
  plan.shard = resolve_shard(o.node_rank, o.num_nodes, env);
  plan.output_dir = o.output_dir;
  plan.results_path = results_path_of(o);
  plan.failures_path = failures_path_of(plan.results_path);
  // What earlier runs finished (results.csv and any shard journals); a file that cannot be trusted stops here.
  plan.journals_state = journals_state(plan.results_path);
  const RecordTable done_records = read_journals(plan.results_path);
  read_journals(plan.failures_path);  // a failures file that cannot be trusted stops the run here too
  std::vector<std::string> given_columns;
  for (const std::string& c : param_columns())
    if (plan.manifest.column(c) >= 0) given_columns.push_back(c);
  plan.column_warnings = unused_column_warnings(spec, given_columns);
  if (plan.manifest.column("loras") >= 0 && plan.manifest.column("lora") < 0)  // a results.csv fed back, or a typo
    plan.column_warnings.push_back(
        "manifest column 'loras' is not read (it is what results.csv records): a row's own LoRA set is the column "
        "'lora' (docs/lora.md)");
  // Output names must be unique over the whole manifest, or two rows would write one file.
  const Manifest& m = plan.manifest;
  std::vector<OutputName> names;
  std::map<std::string, int> first_line;
  for (const auto& row : m.rows) {
    names.push_back(make_output_name(o.output_name_column ? m.value(row, *o.output_name_column) : std::nullopt,
                                     row.index, o.output_format));
    if (names.back().error.empty()) {
      auto [it, fresh] = first_line.emplace(names.back().name, row.line);
      if (!fresh)
        throw ManifestError(fmt::format("manifest {}, line {}: output name '{}' is already used by line {}", m.path,
                                        row.line, names.back().name, it->second));
    }
  }

  std::vector<std::size_t> selected;
  RowFilter filter;
  if (o.filter_rows) filter = parse_row_filter(*o.filter_rows);
  for (std::size_t k = 0; k < m.rows.size(); ++k)
    if (!o.filter_rows || filter.contains(m.rows[k].index)) selected.push_back(k);
  plan.selected = selected.size();

  const auto [begin, end] = shard_range(selected.size(), plan.shard);
  if (o.seed) {
    plan.base_seed = *o.seed;
  } else if (const auto recorded =
                 o.resume ? recorded_base_seed(done_records, m, selected, begin, end) : std::nullopt) {
    plan.base_seed = *recorded;  // this shard's earlier rows were made with it: resume continues with it
    plan.base_seed_source = "recorded in " + plan.results_path;
  } else {  // drawn once, logged and recorded so that every output stays reproducible
    std::random_device rd;
    plan.base_seed = static_cast<int64_t>(((uint64_t(rd()) << 32) | rd()) & 0x7fffffffULL);
    plan.base_seed_random = true;
    plan.base_seed_source = "random: pass --seed to fix it";
  }
  std::map<std::string, std::string> lora_problems;  // a row's LoRA file -> why it cannot be used ("": it can)
  for (std::size_t s = begin; s < end; ++s) {
    const std::size_t k = selected[s];
    PlannedRow pr;
    pr.row = &m.rows[k];
    pr.input = interpret_row(m, *pr.row);
    pr.output = names[k];
    pr.problems = pr.input.problems;
    // A row's LoRA files read once each, as --lora files are (src/cli/options.cpp): one this runtime cannot use fails
    // its rows here, and in --dry_run. Whether its layers fit the transformer is known only when the model merges it.
    for (const LoraSpec& l : pr.input.loras.value_or(std::vector<LoraSpec>{})) {
      std::error_code ec;
      if (!fs::is_regular_file(l.path, ec)) continue;  // interpret_row named it
      auto [it, fresh] = lora_problems.emplace(l.path, "");
      if (fresh) try {
          lora_layers(read_safetensors(l.path), l.path);
        } catch (const std::exception& e) {
          it->second = e.what();
        }
      if (!it->second.empty()) pr.problems.push_back("lora: " + it->second);
    }
    // The model's image-count rule, before any model loads (an empty list is the manifest's own problem).
    if (const std::string why = image_count_problem(spec, pr.input.images.size());
        !why.empty() && !pr.input.images.empty())
      pr.problems.push_back(fmt::format("{}: {}", pr.input.image_column, why));
    for (const auto& [name, v] :
         {std::pair{"width", pr.input.params.width}, std::pair{"height", pr.input.params.height}})
      if (v)
        if (const std::string why = output_size_problem(spec, name, *v); !why.empty())
          pr.problems.push_back(fmt::format("{}: {}", name, why));
    if (!pr.output.error.empty())
      pr.problems.push_back(fmt::format("output name: {}", pr.output.error));
    else
      pr.output_path = (fs::path(o.output_dir) / pr.output.name).string();
    int64_t seed = 0;
    if (pr.input.seed) {
      pr.seed = static_cast<uint64_t>(*pr.input.seed);
    } else if (__builtin_add_overflow(plan.base_seed, pr.row->index, &seed) || seed < 0) {
      pr.problems.push_back(
          fmt::format("seed: base seed {} + index {} is outside 0..2^63-1", plan.base_seed, pr.row->index));
    } else {
      pr.seed = static_cast<uint64_t>(seed);
    }
    // A row is done when its image and its record exist: an image without a record (a crash between the
    // two, a record that could not be written) is made again, identical for its seed.
    std::error_code ec;
    const bool image = o.resume && !pr.output_path.empty() && fs::is_regular_file(pr.output_path, ec) &&
                       fs::file_size(pr.output_path, ec) > 0;
    const Record* record = image ? done_records.find(std::to_string(pr.row->index)) : nullptr;
    const bool recorded = record && record->count("output_image") && record->at("output_image") == pr.output.name;
    if (image && recorded) {
      ++plan.already_done;
      const std::string diff = settings_difference(*record, row_settings(plan, pr));
      if (!diff.empty()) plan.changed_settings.push_back(fmt::format("index {}: {}", pr.row->index, diff));
    } else {
      if (image) ++plan.unrecorded_images;
      plan.todo.push_back(plan.shard_rows.size());
    }
    plan.shard_rows.push_back(std::move(pr));
  }
  if (!plan.changed_settings.empty()) {
    const std::size_t show = std::min<std::size_t>(plan.changed_settings.size(), 3);
    throw ResultsError(fmt::format(
        "{} finished row(s) in {} were made with other settings than this run ({}{}); resuming would mix the two. "
        "Pass --no_resume to make every row again with these settings, or give this run another --output_dir",
        plan.changed_settings.size(), plan.results_path,
        fmt::join(plan.changed_settings.begin(), plan.changed_settings.begin() + show, "; "),
        plan.changed_settings.size() > show ? "; ..." : ""));
  }
  return plan;
}

std::optional<int64_t> recorded_base_seed(const RecordTable& done, const Manifest& manifest,
                                          const std::vector<std::size_t>& selected, std::size_t begin,
                                          std::size_t end) {
  for (std::size_t s = begin; s < end; ++s)
    if (const Record* r = done.find(std::to_string(manifest.rows[selected[s]].index)))
      if (auto it = r->find("base_seed"); it != r->end() && !it->second.empty()) {
        try {
          return std::stoll(it->second);
        } catch (const std::exception&) {
        }
      }
  return std::nullopt;
}

std::string format_plan(const Plan& plan, const EditOptions& o, const std::string& bundle_status,
                        const std::vector<std::string>& devices, std::size_t* problem_rows) {
  const Manifest& m = plan.manifest;
  const ModelSpec& s = *plan.spec;
  std::string out = "diffgentor dry run (nothing is loaded or written)\n";
  out += fmt::format("  model       {} -> {} ({}){}\n", o.model_name, s.type, s.pipeline_class,
                     o.model_type ? " [--model_type]" : " [detected from the name]");
  out += fmt::format("  bundle      {}\n", bundle_status);
  std::string params = fmt::format("steps {}, guidance {}", plan.params.steps, plan.params.guidance);
  if (plan.params.true_cfg) params += fmt::format(", true_cfg {}", *plan.params.true_cfg);
  if (plan.params.negative_prompt) params += fmt::format(", negative_prompt \"{}\"", *plan.params.negative_prompt);
  if (plan.params.width || plan.params.height)
    params += fmt::format(", output size {}x{} requested",
                          plan.params.width ? std::to_string(*plan.params.width) : std::string("(model's)"),
                          plan.params.height ? std::to_string(*plan.params.height) : std::string("(model's)"));
  out += fmt::format("  sampling    {}\n", params);
  out += fmt::format("  seeds       base {}{}; row seed = base + index unless the row has a seed\n", plan.base_seed,
                     plan.base_seed_source.empty() ? "" : " (" + plan.base_seed_source + ")");
  out += fmt::format("  device      {} -> {} ({}), batch size {}\n", o.device, fmt::join(devices, ", "), o.torch_dtype,
                     o.batch_size);
  out += fmt::format("  manifest    {} ({}, {} rows, image column '{}', instruction column '{}')\n", m.path, m.format,
                     m.rows.size() + m.orphans.size(), m.image_column, m.instruction_column);
  out += fmt::format("  selection   {} selected{}; shard {} of {} ({}) has {}\n", plan.selected,
                     o.filter_rows ? fmt::format(" by --filter_rows {}", *o.filter_rows) : std::string(" (no filter)"),
                     plan.shard.rank, plan.shard.count, plan.shard.source, plan.shard_rows.size());
  out += fmt::format("  resume      {}: {} already done, {} to do\n", o.resume ? "on" : "off (--no_resume)",
                     plan.already_done, plan.todo.size());
  out += fmt::format("  outputs     {} (results: {}, failures: {})\n", plan.output_dir, plan.results_path,
                     plan.failures_path);
  const std::size_t show = std::min<std::size_t>(plan.todo.size(), 5);
  for (std::size_t k = 0; k < show; ++k) {
    const PlannedRow& pr = plan.shard_rows[plan.todo[k]];
    out +=
        fmt::format("    index {:<8} -> {}\n", pr.row->index, pr.output.error.empty() ? pr.output.name : "(invalid)");
  }
  if (plan.todo.size() > show) out += fmt::format("    ... and {} more\n", plan.todo.size() - show);

  std::size_t bad = 0;
  std::string problems;
  for (std::size_t pos : plan.todo) {
    const PlannedRow& pr = plan.shard_rows[pos];
    std::vector<std::string> list = pr.problems;
    for (const auto& img : pr.input.images) {
      std::error_code ec;
      if (!is_url(img) && !fs::is_regular_file(img, ec))
        list.push_back(fmt::format("{}: {}: {}", pr.input.image_column,
                                   fs::exists(img, ec) ? "not a regular file" : "file not found", img));
    }
    if (list.empty()) continue;
    ++bad;
    for (const auto& p : list) problems += fmt::format("    index {} (line {}): {}\n", pr.row->index, pr.row->line, p);
  }
  for (const auto& orphan : m.orphans) {
    ++bad;
    problems += fmt::format("    line {}: malformed record, index unreadable: {}\n", orphan.line, orphan.reason);
  }
  for (const std::string& w : plan.column_warnings) out += fmt::format("  warning     {}\n", w);
  out += bad ? fmt::format("  problems    {} row(s):\n{}", bad, problems) : "  problems    none\n";
  if (problem_rows) *problem_rows = bad;
  return out;
}

}  // namespace dg
