// The report's HTML (include/diffgentor/report.hpp): one self-contained page. The rows travel as JSON in a
// <script type="application/json"> block and the page's script builds the cards of the current page with
// textContent, so no instruction is ever parsed as HTML; the header is escaped here.
#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "diffgentor/report.hpp"

namespace dg {

namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// JSON that is safe inside <script>: no '<' can close the element (or open a comment) early. Invalid UTF-8 in a
// manifest value becomes U+FFFD instead of failing the page.
std::string script_json(const nlohmann::json& j) {
  const std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  for (char c : text) out += c == '<' ? std::string("\\u003c") : std::string(1, c);
  return out;
}

// Model seconds of the finished rows in index order as bars; more than 600 rows are averaged into 600 buckets.
std::string chart_svg(const ReportModel& m) {
  std::vector<double> times;
  for (const ReportRow& r : m.rows)
    if (!r.failed) times.push_back(r.model_s);
  if (times.empty()) return "<p class=\"muted\">No finished rows to chart.</p>";
  const std::size_t bars = std::min<std::size_t>(times.size(), 600);
  std::vector<double> v(bars, 0.0);
  std::vector<int> n(bars, 0);
  for (std::size_t k = 0; k < times.size(); ++k) {
    const std::size_t b = k * bars / times.size();
    v[b] += times[k];
    ++n[b];
  }
  for (std::size_t b = 0; b < bars; ++b) v[b] /= std::max(1, n[b]);
  const double peak = std::max(*std::max_element(v.begin(), v.end()), 1e-9);
  const double W = 900, H = 120, w = W / static_cast<double>(bars);
  std::string svg = fmt::format(
      "<svg class=\"chart\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"model time per "
      "row\"><title>model seconds per row, in index order{}</title>",
      W, H + 16, W, H + 16, bars < times.size() ? fmt::format(" ({} rows averaged per bar)", times.size() / bars) : "");
  for (std::size_t b = 0; b < bars; ++b) {
    const double h = std::max(1.0, v[b] / peak * H);
    svg += fmt::format("<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\"/>", b * w, H - h,
                       std::max(w - 0.5, 0.5), h);
  }
  svg += fmt::format("<text x=\"0\" y=\"{}\">0 s</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">max {:.3f} s</text>",
                     H + 14, W, H + 14, peak);
  return svg + "</svg>";
}

const char* const kStyle = R"css(
body{font:14px/1.4 system-ui,sans-serif;margin:16px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 8px}
table.facts td{padding:1px 12px 1px 0;vertical-align:top}
.muted{color:#777}
.chart rect{fill:#4a7bd0}.chart text{font-size:11px;fill:#555}
.controls{margin:12px 0;display:flex;gap:12px;align-items:center;flex-wrap:wrap}
.controls input[type=search]{width:320px;padding:4px}
#cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}
.card.failed{border-color:#d33}
.imgs{display:flex;gap:6px;align-items:flex-start;flex-wrap:wrap}
.imgs img{max-width:200px;max-height:200px;border:1px solid #eee}
.arrow{align-self:center;color:#999}
.idx{font-weight:600}.enh{color:#555;font-style:italic}
.fail{color:#b00;background:#fee;padding:4px;border-radius:4px;white-space:pre-wrap}
.meta{color:#666;font-size:12px}
)css";

// Builds the cards of the current page from the JSON rows (textContent only), with search, "failed only" and paging.
const char* const kScript = R"js(
const rows = JSON.parse(document.getElementById('rows').textContent);
const PAGE = 100;
let page = 0;
const q = document.getElementById('q'), failedOnly = document.getElementById('failed');
const cards = document.getElementById('cards'), info = document.getElementById('info');
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function picture(thumb, link, label) {
  const a = el('a');
  a.href = link || '#';
  if (thumb) {
    const i = el('img');
    i.loading = 'lazy';
    i.src = thumb;
    i.alt = label;
    i.title = label;
    a.append(i);
  } else {
    a.textContent = label;
  }
  return a;
}
function card(r) {
  const c = el('div', r.failed ? 'card failed' : 'card');
  const imgs = el('div', 'imgs');
  r.inputs.forEach((p, k) => imgs.append(picture(r.input_thumbs[k], r.input_links[k], p)));
  imgs.append(el('span', 'arrow', '\u2192'));
  if (r.failed) imgs.append(el('div', 'fail', 'failed at ' + r.stage + ': ' + r.reason));
  else imgs.append(picture(r.output_thumb, r.output_link, r.output));
  c.append(imgs);
  const head = el('div');
  head.append(el('span', 'idx', '#' + r.index + ' '), el('span', '', r.instruction));
  c.append(head);
  if (r.enhanced) c.append(el('div', 'enh', 'enhanced: ' + r.enhanced));
  const meta = [];
  if (r.seed) meta.push('seed ' + r.seed);
  if (r.size) meta.push(r.size);
  if (!r.failed) meta.push('model ' + r.model_s.toFixed(3) + ' s');
  c.append(el('div', 'meta', meta.join(' \u00b7 ')));
  return c;
}
function matching() {
  const t = q.value.trim().toLowerCase();
  return rows.filter(r => (!failedOnly.checked || r.failed) &&
                          (!t || (r.instruction + '\n' + r.enhanced).toLowerCase().includes(t)));
}
function render() {
  const m = matching();
  const pages = Math.max(1, Math.ceil(m.length / PAGE));
  page = Math.max(0, Math.min(page, pages - 1));
  const shown = m.slice(page * PAGE, (page + 1) * PAGE);
  cards.replaceChildren(...shown.map(card));
  info.textContent = m.length + ' of ' + rows.length + ' card(s), page ' + (page + 1) + ' of ' + pages;
  document.getElementById('prev').disabled = page === 0;
  document.getElementById('next').disabled = page >= pages - 1;
  document.body.dataset.cards = shown.length;
}
q.addEventListener('input', () => { page = 0; render(); });
failedOnly.addEventListener('change', () => { page = 0; render(); });
document.getElementById('prev').addEventListener('click', () => { page--; render(); });
document.getElementById('next').addEventListener('click', () => { page++; render(); });
render();
document.body.dataset.renderMs = performance.now().toFixed(1);
)js";

}  // namespace

std::string render_report_html(const ReportModel& m, const std::vector<CardFiles>& files) {
  nlohmann::json rows = nlohmann::json::array();
  for (std::size_t k = 0; k < m.rows.size(); ++k) {
    const ReportRow& r = m.rows[k];
    const CardFiles f = k < files.size() ? files[k] : CardFiles{};
    nlohmann::json in_thumbs = f.input_thumbs, in_links = f.input_links;
    while (in_thumbs.size() < r.inputs.size()) in_thumbs.push_back("");
    while (in_links.size() < r.inputs.size()) in_links.push_back(r.inputs[in_links.size()]);
    rows.push_back({{"index", r.index},
                    {"failed", r.failed},
                    {"inputs", r.inputs},
                    {"input_thumbs", in_thumbs},
                    {"input_links", in_links},
                    {"output", r.output},
                    {"output_thumb", f.output_thumb},
                    {"output_link", f.output_link},
                    {"instruction", r.instruction},
                    {"enhanced", r.enhanced},
                    {"seed", r.seed},
                    {"size", r.size},
                    {"model_s", r.model_s},
                    {"stage", r.stage},
                    {"reason", r.reason}});
  }
  const auto fact = [](const std::string& name, const std::string& value) {
    return fmt::format("<tr><td class=\"muted\">{}</td><td>{}</td></tr>", escape(name), escape(value));
  };
  std::string facts =
      fact("model", m.model_name.empty() ? "(not recorded)" : m.model_name) + fact("model type", m.model_type) +
      fact("rows", fmt::format("{} done, {} failed{}", m.done, m.failed,
                               m.pending ? fmt::format(", {} pending", *m.pending) : "")) +
      fact("wall time", m.wall_s > 0 ? fmt::format("{:.1f} s ({:.3f} rows/s; first row started to "
                                                   "last finished, over every recorded run)",
                                                   m.wall_s, m.rows_per_s)
                                     : "-") +
      fact("defaults",
           fmt::format("steps {}, guidance {}{}", m.steps.empty() ? "-" : m.steps,
                       m.guidance.empty() ? "-" : m.guidance, m.true_cfg.empty() ? "" : ", true CFG " + m.true_cfg)) +
      fact("enhancer fallbacks", std::to_string(m.enhance_fallbacks));
  return fmt::format(
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" "
      "content=\"width=device-width\">\n<title>diffgentor report: {title}</title>\n<style>{style}</style></head>\n"
      "<body>\n<h1>diffgentor report: {title}</h1>\n<table class=\"facts\">{facts}</table>\n{chart}\n"
      "<div class=\"controls\"><input type=\"search\" id=\"q\" placeholder=\"search instructions\">"
      "<label><input type=\"checkbox\" id=\"failed\"> failed only</label>"
      "<button id=\"prev\">&larr; previous</button><button id=\"next\">next &rarr;</button>"
      "<span id=\"info\" class=\"muted\"></span></div>\n<div id=\"cards\"></div>\n"
      "<script type=\"application/json\" id=\"rows\">{rows}</script>\n<script>{script}</script>\n</body></html>\n",
      fmt::arg("title", escape(m.model_name.empty() ? m.model_type : m.model_name)), fmt::arg("style", kStyle),
      fmt::arg("facts", facts), fmt::arg("chart", chart_svg(m)), fmt::arg("rows", script_json(rows)),
      fmt::arg("script", kScript));
}

}  // namespace dg
