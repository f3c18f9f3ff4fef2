#include "diffgentor/plan.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <map>
#include <random>

#include "diffgentor/http.hpp"

namespace fs = std::filesystem;

namespace dg {

Plan make_plan(const EditOptions& o, const ModelSpec& spec, const EnvLookup& env) {
  Plan plan;
  plan.manifest = load_manifest(o.input, {o.instruction_key, o.output_name_column});
  plan.spec = &spec;
  plan.params = effective_params(spec, o);
  plan.shard = resolve_shard(o.node_rank, o.num_nodes, env);
  plan.output_dir = o.output_dir;
  plan.results_path = o.output_csv ? *o.output_csv : (fs::path(o.output_dir) / "results.csv").string();
  const fs::path rp(plan.results_path);
  plan.failures_path =
      (rp.parent_path() / (rp.stem() == "results" ? std::string("failures.csv") : rp.stem().string() + ".failures.csv"))
          .string();
  if (o.seed) {
    plan.base_seed = *o.seed;
  } else {  // drawn once, logged and recorded so that every output stays reproducible
    std::random_device rd;
    plan.base_seed = static_cast<int64_t>(((uint64_t(rd()) << 32) | rd()) & 0x7fffffffULL);
    plan.base_seed_random = true;
  }

  // Output names must be unique over the whole manifest, or two rows would write one file.
  const Manifest& m = plan.manifest;
  std::vector<OutputName> names;
  std::map<std::string, int> first_line;
  for (const auto& row : m.rows) {
    names.push_back(
        make_output_name(o.output_name_column ? m.value(row, *o.output_name_column) : std::nullopt, row.index));
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
  for (std::size_t s = begin; s < end; ++s) {
    const std::size_t k = selected[s];
    PlannedRow pr;
    pr.row = &m.rows[k];
    pr.input = interpret_row(m, *pr.row);
    pr.output = names[k];
    pr.problems = pr.input.problems;
    // The model's image-count rule, before any model loads (an empty list is the manifest's own problem).
    if (const std::string why = image_count_problem(spec, pr.input.images.size());
        !why.empty() && !pr.input.images.empty())
      pr.problems.push_back(fmt::format("{}: {}", pr.input.image_column, why));
    if (!pr.output.error.empty())
      pr.problems.push_back(fmt::format("output name: {}", pr.output.error));
    else
      pr.output_path = (fs::path(o.output_dir) / pr.output.name).string();
    if (pr.input.seed) {
      pr.seed = static_cast<uint64_t>(*pr.input.seed);
    } else if (plan.base_seed + pr.row->index < 0) {
      pr.problems.push_back(fmt::format("seed: base seed {} + index {} is negative", plan.base_seed, pr.row->index));
    } else {
      pr.seed = static_cast<uint64_t>(plan.base_seed + pr.row->index);
    }
    std::error_code ec;
    const bool done = o.resume && !pr.output_path.empty() && fs::is_regular_file(pr.output_path, ec) &&
                      fs::file_size(pr.output_path, ec) > 0;
    if (done)
      ++plan.already_done;
    else
      plan.todo.push_back(plan.shard_rows.size());
    plan.shard_rows.push_back(std::move(pr));
  }
  return plan;
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
  out += fmt::format("  sampling    {}\n", params);
  out += fmt::format("  seeds       base {}{}; row seed = base + index unless the row has a seed\n", plan.base_seed,
                     plan.base_seed_random ? " (random: pass --seed to fix it)" : "");
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
        list.push_back(fmt::format("{}: file not found: {}", pr.input.image_column, img));
    }
    if (list.empty()) continue;
    ++bad;
    for (const auto& p : list) problems += fmt::format("    index {} (line {}): {}\n", pr.row->index, pr.row->line, p);
  }
  for (const auto& orphan : m.orphans) {
    ++bad;
    problems += fmt::format("    line {}: malformed record, index unreadable: {}\n", orphan.line, orphan.reason);
  }
  out += bad ? fmt::format("  problems    {} row(s):\n{}", bad, problems) : "  problems    none\n";
  if (problem_rows) *problem_rows = bad;
  return out;
}

}  // namespace dg
