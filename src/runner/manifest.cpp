// Manifest loading and per-row interpretation (docs/batch-runner.md, "Manifest").
#include "diffgentor/manifest.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "diffgentor/csv.hpp"
#include "diffgentor/http.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace dg {

int Manifest::column(const std::string& name) const {
  for (std::size_t k = 0; k < columns.size(); ++k)
    if (columns[k] == name) return static_cast<int>(k);
  return -1;
}

std::optional<std::string> Manifest::value(const ManifestRow& row, const std::string& name) const {
  const int k = column(name);
  if (k < 0) return std::nullopt;
  return static_cast<std::size_t>(k) < row.values.size() ? row.values[k] : std::string();
}

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::optional<int64_t> parse_int(const std::string& raw) {
  const std::string s = trim(raw);
  if (s.empty()) return std::nullopt;
  std::size_t used = 0;
  try {
    const long long v = std::stoll(s, &used, 10);
    if (used == s.size()) return static_cast<int64_t>(v);
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

// A finite decimal number (the whole field), as the flags' float options take it.
std::optional<double> parse_number(const std::string& raw) {
  const std::string s = trim(raw);
  if (s.empty()) return std::nullopt;
  std::size_t used = 0;
  try {
    const double v = std::stod(s, &used);
    if (used == s.size() && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw ManifestError(fmt::format("manifest {}: not found or not a regular file", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ManifestError(fmt::format("manifest {}: cannot be opened", path));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void load_csv(Manifest& m, const std::string& text) {
  auto records = parse_csv(text);
  if (records.empty()) throw ManifestError(fmt::format("manifest {}: empty (no header line)", m.path));
  if (!records[0].error.empty())
    throw ManifestError(fmt::format("manifest {}, line 1 (header): {}", m.path, records[0].error));
  m.columns = records[0].fields;
  for (auto& c : m.columns) c = trim(c);
  // A quote that is never closed would make every later line part of one field: no line may vanish, so
  // the manifest is refused before any work, naming the line.
  const CsvRecord& last = records.back();
  std::string tail = last.error == "unterminated quoted field" ? last.fields.back() : std::string();
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
  // (An open quote on the last line swallows nothing: that row alone fails, with its line number.)
  if (records.size() > 1 && tail.find('\n') != std::string::npos) {
    const auto swallowed = std::count(tail.begin(), tail.end(), '\n');
    throw ManifestError(
        fmt::format("manifest {}, line {}: a quoted field opens here and is never closed, so the "
                    "{} line(s) after it would be read as part of this row; close the quote",
                    m.path, last.line, swallowed));
  }
  for (std::size_t r = 1; r < records.size(); ++r) {
    auto& rec = records[r];
    ManifestRow row;
    row.line = rec.line;
    row.error = rec.error;
    if (row.error.empty() && rec.fields.size() != m.columns.size())
      row.error = fmt::format("expected {} fields, found {}", m.columns.size(), rec.fields.size());
    row.values = std::move(rec.fields);
    row.values.resize(m.columns.size());
    m.rows.push_back(std::move(row));
  }
}

std::string json_to_field(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

void load_jsonl(Manifest& m, const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n\xEF\xBB\xBF");
  if (first != std::string::npos && text[first] == '[')
    throw ManifestError(
        fmt::format("manifest {} is a JSON array; a JSONL manifest holds one JSON object per line "
                    "(convert it with: jq -c '.[]' {} > rows.jsonl)",
                    m.path, m.path));
  std::istringstream in(text);
  std::string line_text;
  int line = 0;
  std::vector<std::pair<int, json>> objects;
  std::vector<std::pair<int, std::string>> bad;
  std::map<std::string, int> seen;
  while (std::getline(in, line_text)) {
    ++line;
    if (line == 1 && line_text.rfind("\xEF\xBB\xBF", 0) == 0) line_text.erase(0, 3);
    if (trim(line_text).empty()) continue;
    json obj = json::parse(line_text, nullptr, false);
    if (obj.is_discarded() || !obj.is_object()) {
      objects.emplace_back(line, json());
      bad.emplace_back(line, obj.is_discarded() ? "invalid JSON" : "not a JSON object");
      continue;
    }
    for (auto it = obj.begin(); it != obj.end(); ++it)
      if (seen.emplace(it.key(), 0).second) m.columns.push_back(it.key());
    objects.emplace_back(line, std::move(obj));
  }
  std::size_t b = 0;
  for (auto& [ln, obj] : objects) {
    ManifestRow row;
    row.line = ln;
    row.values.assign(m.columns.size(), "");
    if (obj.is_null()) {
      row.error = bad[b++].second;
    } else {
      for (std::size_t k = 0; k < m.columns.size(); ++k)
        if (obj.contains(m.columns[k])) row.values[k] = json_to_field(obj[m.columns[k]]);
    }
    m.rows.push_back(std::move(row));
  }
  if (m.rows.empty()) throw ManifestError(fmt::format("manifest {}: no rows", m.path));
}

}  // namespace

Manifest load_manifest(const std::string& path, const ManifestOptions& options) {
  Manifest m;
  m.path = path;
  const std::string text = read_file(path);
  std::string lower_path = path;  // the extension decides the format, in any case (.JSONL, .Csv)
  std::transform(lower_path.begin(), lower_path.end(), lower_path.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const bool jsonl =
      has_suffix(lower_path, ".jsonl") || has_suffix(lower_path, ".ndjson") || has_suffix(lower_path, ".json");
  m.format = jsonl ? "jsonl" : "csv";
  if (jsonl)
    load_jsonl(m, text);
  else
    load_csv(m, text);

  for (const char* name : {"input_images", "image_url", "image"})
    if (m.column(name) >= 0) {
      m.image_column = name;
      break;
    }
  const std::string cols = fmt::format("{}", fmt::join(m.columns, ", "));
  if (m.image_column.empty())
    throw ManifestError(
        fmt::format("manifest {}: no image column; expected one of input_images, image_url, "
                    "image (columns: {})",
                    path, cols));
  if (m.column(options.instruction_key) < 0)
    throw ManifestError(fmt::format("manifest {}: no instruction column '{}' (set --instruction_key; columns: {})",
                                    path, options.instruction_key, cols));
  m.instruction_column = options.instruction_key;
  if (options.output_name_column && m.column(*options.output_name_column) < 0)
    throw ManifestError(fmt::format("manifest {}: --output_name_column '{}' is not a column (columns: {})", path,
                                    *options.output_name_column, cols));

  // Identity: the index column, else the record number. Duplicates are an error before any work.
  const int index_col = m.column("index");
  std::map<int64_t, int> first_line;
  std::vector<ManifestRow> kept;
  for (std::size_t r = 0; r < m.rows.size(); ++r) {
    ManifestRow& row = m.rows[r];
    if (index_col < 0) {
      row.index = static_cast<int64_t>(r);
    } else {
      const auto idx = parse_int(row.values[index_col]);
      if (!idx) {
        if (!row.error.empty()) {  // malformed and unidentifiable: reported, never run
          m.orphans.push_back({row.line, row.error});
          continue;
        }
        throw ManifestError(fmt::format("manifest {}, line {}, field 'index': '{}' is not an integer", path, row.line,
                                        row.values[index_col]));
      }
      row.index = *idx;
    }
    auto [it, fresh] = first_line.emplace(row.index, row.line);
    if (!fresh)
      throw ManifestError(fmt::format("manifest {}, line {}, field 'index': duplicate index {} (first at line {})",
                                      path, row.line, row.index, it->second));
    kept.push_back(std::move(row));
  }
  m.rows = std::move(kept);
  return m;
}

RowInput interpret_row(const Manifest& m, const ManifestRow& row) {
  RowInput in;
  if (!row.error.empty()) {
    in.problems.push_back(fmt::format("malformed record: {}", row.error));
    return in;
  }
  // The first image column that this row fills (JSONL rows may use different keys).
  std::string column = m.image_column, raw;
  for (const char* name : {"input_images", "image_url", "image"}) {
    const auto v = m.value(row, name);
    if (v && !trim(*v).empty()) {
      column = name;
      raw = trim(*v);
      break;
    }
  }
  in.image_column = column;
  const fs::path base = fs::path(m.path).parent_path();
  auto resolve = [&](const std::string& ref) -> std::string {
    if (is_url(ref)) return ref;
    const auto scheme = ref.find("://");
    if (scheme != std::string::npos && scheme < 10) {
      in.problems.push_back(fmt::format("{}: unsupported URL scheme in '{}' (http and https only)", column, ref));
      return ref;
    }
    const fs::path p(ref);
    return (p.is_absolute() ? p : base / p).lexically_normal().string();
  };
  if (!raw.empty() && raw.front() == '[') {
    const json list = json::parse(raw, nullptr, false);
    if (list.is_discarded() || !list.is_array()) {
      in.problems.push_back(fmt::format("{}: not a valid JSON list", column));
    } else {
      for (const auto& item : list) {
        if (!item.is_string() || trim(item.get<std::string>()).empty()) {
          in.problems.push_back(fmt::format("{}: list items must be non-empty strings", column));
          in.images.clear();
          break;
        }
        in.images.push_back(resolve(trim(item.get<std::string>())));
      }
    }
  } else if (!raw.empty()) {
    in.images.push_back(resolve(raw));
  }
  if (in.images.empty() && in.problems.empty()) in.problems.push_back(fmt::format("{}: no input image", column));

  in.instruction = *m.value(row, m.instruction_column);
  if (trim(in.instruction).empty()) in.problems.push_back(fmt::format("{}: empty instruction", m.instruction_column));

  if (auto s = m.value(row, "seed"); s && !trim(*s).empty()) {
    const auto v = parse_int(*s);
    if (!v || *v < 0)
      in.problems.push_back(fmt::format("seed: '{}' is not a non-negative integer", *s));
    else
      in.seed = *v;
  }
  // The per-row parameters, checked as their flags are (src/cli/options.cpp): a bad value fails this row only.
  const auto integer = [&](const char* name, int lo, int hi, std::optional<int>& out) {
    const auto raw = m.value(row, name);
    if (!raw || trim(*raw).empty()) return;
    auto v = parse_int(*raw);
    if (const auto f = parse_number(*raw); !v && f && std::floor(*f) == *f && std::fabs(*f) < 1e15)
      v = static_cast<int64_t>(*f);  // "1024.0": what pandas writes for an integer column with blanks
    if (!v || *v < lo || *v > hi)
      in.problems.push_back(fmt::format("{}: '{}' is not an integer in {}..{}", name, *raw, lo, hi));
    else
      out = static_cast<int>(*v);
  };
  const auto scale = [&](const char* name, std::optional<double>& out) {
    const auto raw = m.value(row, name);
    if (!raw || trim(*raw).empty()) return;
    const auto v = parse_number(*raw);
    if (!v || *v < 0)
      in.problems.push_back(fmt::format("{}: '{}' is not a finite number >= 0", name, *raw));
    else
      out = *v;
  };
  integer("num_inference_steps", 1, 1000, in.params.steps);
  scale("guidance_scale", in.params.guidance);
  scale("true_cfg_scale", in.params.true_cfg);
  if (auto np = m.value(row, "negative_prompt"); np && !np->empty()) in.params.negative_prompt = *np;
  integer("width", 1, kMaxOutputSide, in.params.width);
  integer("height", 1, kMaxOutputSide, in.params.height);
  if (auto raw = m.value(row, "lora"); raw && !trim(*raw).empty()) {
    in.loras.emplace();
    if (trim(*raw) != "none")
      for (std::size_t start = 0; start <= raw->size();) {
        const std::size_t end = std::min(raw->find(';', start), raw->size());
        const std::string item = trim(raw->substr(start, end - start));
        start = end + 1;
        if (item.empty()) continue;
        LoraSpec spec = parse_lora_spec(item);
        const fs::path p(spec.path);
        spec.path = (p.is_absolute() ? p : base / p).lexically_normal().string();
        std::error_code ec;
        if (!fs::is_regular_file(spec.path, ec))
          in.problems.push_back(fmt::format("lora: '{}' names no file ({} does not exist)", item, spec.path));
        in.loras->push_back(std::move(spec));
      }
  }
  return in;
}

const std::vector<std::string>& param_columns() {
  static const std::vector<std::string> columns = {"num_inference_steps", "guidance_scale", "true_cfg_scale",
                                                   "negative_prompt",     "width",          "height"};
  return columns;
}

}  // namespace dg
