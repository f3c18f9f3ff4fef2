// GLM-Image inputs (include/diffgentor/glm_image_inputs.hpp). Facts from diffusers 58eb52c0
// pipelines/glm_image/pipeline_glm_image.py and transformers models/glm_image/ (5.16: processing_glm_image.py,
// image_processing_pil_glm_image.py, modular_glm_image.py); pinned by tests/data/glm_image/goldens.json, which
// tools/goldens/glm_image_goldens.py writes from those classes.
#include "diffgentor/glm_image_inputs.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "diffgentor/resize.hpp"

namespace dg {

namespace {

// re.findall(open + "([^" + excluded + "]*)" + close, s): leftmost matches, each resuming after the previous one.
// An open delimiter whose body runs into an excluded character (or the end) does not match there; the search
// goes on from the next character, as the regex engine does.
void find_quoted(const std::string& s, const std::string& open, const std::string& close,
                 const std::vector<std::string>& excluded, std::vector<std::string>& out) {
  std::size_t i = 0;
  while ((i = s.find(open, i)) != std::string::npos) {
    const std::size_t body = i + open.size();
    std::size_t j = body;
    bool matched = false;
    while (j < s.size()) {
      if (s.compare(j, close.size(), close) == 0) {
        matched = true;
        break;
      }
      bool stop = false;
      for (const auto& e : excluded) stop = stop || s.compare(j, e.size(), e) == 0;
      if (stop) break;
      ++j;
    }
    if (matched) {
      out.push_back(s.substr(body, j - body));
      i = j + close.size();
    } else {
      i += 1;
    }
  }
}

}  // namespace

std::vector<std::string> glm_glyph_texts(const std::string& prompt) {
  std::vector<std::string> out;
  find_quoted(prompt, "'", "'", {"'"}, out);
  find_quoted(prompt, "\u201c", "\u201d", {"\u201c", "\u201d"}, out);
  find_quoted(prompt, "\"", "\"", {"\""}, out);
  find_quoted(prompt, "\u300c", "\u300d", {"\u300c", "\u300d"}, out);
  return out;
}

std::vector<int64_t> byt5_ids(const std::string& text, std::size_t max_length) {
  // ByT5Tokenizer's added tokens: <pad>, </s>, <unk> (0, 1, 2) strip the whitespace around them; <extra_id_N>
  // (N < 125) is 259 + N and strips nothing.
  static const std::pair<const char*, int64_t> kStripped[] = {{"<pad>", 0}, {"</s>", 1}, {"<unk>", 2}};
  const auto space = [](unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  std::vector<int64_t> ids;
  for (std::size_t i = 0; i < text.size();) {
    bool special = false;
    for (const auto& [s, id] : kStripped) {
      const std::size_t n = std::char_traits<char>::length(s);
      if (text.compare(i, n, s) != 0) continue;
      while (!ids.empty() && ids.back() >= 3 && space(static_cast<unsigned char>(ids.back() - 3))) ids.pop_back();
      ids.push_back(id);
      for (i += n; i < text.size() && space(static_cast<unsigned char>(text[i]));) ++i;
      special = true;
      break;
    }
    if (!special && text.compare(i, 10, "<extra_id_") == 0) {
      std::size_t e = i + 10;
      while (e < text.size() && std::isdigit(static_cast<unsigned char>(text[e]))) ++e;
      if (e > i + 10 && e - (i + 10) <= 3 && e < text.size() && text[e] == '>') {
        const int n = std::stoi(text.substr(i + 10, e - i - 10));
        if (n < 125 && std::to_string(n) == text.substr(i + 10, e - i - 10)) {
          ids.push_back(259 + n);
          i = e + 1;
          special = true;
        }
      }
    }
    if (special) continue;
    ids.push_back(static_cast<int64_t>(static_cast<unsigned char>(text[i])) + 3);
    ++i;
  }
  if (max_length > 0 && ids.size() + 1 > max_length) ids.resize(max_length - 1);
  ids.push_back(1);
  return ids;
}

int64_t GlyphBatch::valid() const {
  int64_t n = 0;
  for (int64_t m : mask) n += m;
  return n;
}

GlyphBatch glm_glyph_batch(const std::string& prompt, std::size_t max_length) {
  std::vector<std::string> texts = glm_glyph_texts(prompt);
  if (texts.empty()) texts.push_back("");
  std::vector<std::vector<int64_t>> seqs;
  const bool even_pad = texts.size() % 2 == 0;  // `[pad] * ((len(input_ids) + 1) % 2)` upstream
  for (const auto& t : texts) {
    std::vector<int64_t> ids = byt5_ids(t, max_length);
    if (even_pad) ids.insert(ids.begin(), 0);
    seqs.push_back(std::move(ids));
  }
  GlyphBatch b;
  b.rows = static_cast<int64_t>(seqs.size());
  for (const auto& s : seqs) b.cols = std::max<int64_t>(b.cols, static_cast<int64_t>(s.size()));
  for (const auto& s : seqs)
    for (int64_t c = 0; c < b.cols; ++c) {
      const bool in = c < static_cast<int64_t>(s.size());
      b.ids.push_back(in ? s[static_cast<std::size_t>(c)] : 0);
      b.mask.push_back(in ? 1 : 0);
    }
  return b;
}

GlmProcessorConfig GlmProcessorConfig::from_json(const nlohmann::json& j) try {
  GlmProcessorConfig c;
  c.patch_size = j.value("patch_size", c.patch_size);
  // Newer processors keep the limits in size {shortest_edge, longest_edge} (pixels, despite the names).
  const nlohmann::json size = j.value("size", nlohmann::json::object());
  c.min_pixels = j.value("min_pixels", size.value("shortest_edge", c.min_pixels));
  c.max_pixels = j.value("max_pixels", size.value("longest_edge", c.max_pixels));
  for (const char* key : {"merge_size", "temporal_patch_size"})
    if (j.value(key, 1) != 1)
      throw std::invalid_argument(fmt::format(
          "processor/preprocessor_config.json: {} is {}, but GLM-Image's AR grid matches the DiT only with 1", key,
          j.value(key, 1)));
  const auto read3 = [&](const char* key, float* dst) {
    if (!j.contains(key)) return;
    const auto& v = j[key];
    for (int k = 0; k < 3; ++k) dst[k] = v.is_array() ? v.at(static_cast<std::size_t>(k)).get<float>() : v.get<float>();
  };
  read3("image_mean", c.mean);
  read3("image_std", c.std);
  if (c.patch_size < 1 || c.min_pixels < 1 || c.max_pixels < c.min_pixels)
    throw std::invalid_argument("processor/preprocessor_config.json: patch_size, min_pixels or max_pixels is invalid");
  return c;
} catch (const nlohmann::json::exception& e) {
  throw std::invalid_argument(
      fmt::format("processor/preprocessor_config.json: a field has the wrong type ({})", e.what()));
}

int GlmProcessorConfig::shortest_edge() const {
  return static_cast<int>(round_half_even(std::sqrt(static_cast<double>(min_pixels))));
}
int GlmProcessorConfig::longest_edge() const {
  return static_cast<int>(round_half_even(std::sqrt(static_cast<double>(max_pixels))));
}

namespace {

void check_aspect(int height, int width) {
  const double aspect = double(std::max(height, width)) / double(std::min(height, width));
  if (aspect > 4.0)
    throw std::invalid_argument(fmt::format(
        "GLM-Image takes images with an aspect ratio of at most 4 (its image processor's limit); this one is "
        "{}x{} ({:.2f})",
        width, height, aspect));
}

// The scale smart_resize applies: the short side up to `shortest`, then the long side down to `longest`.
double edge_scale(int height, int width, int shortest, int longest) {
  double s = 1.0;
  const int lo = std::min(height, width), hi = std::max(height, width);
  if (lo < shortest) s = double(shortest) / lo;
  if (hi * s > longest) s = double(longest) / hi;
  return s;
}

}  // namespace

std::pair<int, int> glm_reference_size(int width, int height, const GlmProcessorConfig& c) {
  if (width < 1 || height < 1) throw std::invalid_argument("the image is empty");
  check_aspect(height, width);
  const int unit = 2 * c.patch_size;
  const double s = edge_scale(height, width, c.shortest_edge(), c.longest_edge());
  const auto snap = [&](int side) {
    const int v = static_cast<int>(round_half_even(side * s / unit)) * unit;
    return std::clamp(v, unit, c.longest_edge() / unit * unit);
  };
  return {snap(width), snap(height)};
}

std::pair<int, int> glm_smart_resize(int height, int width, const GlmProcessorConfig& c) {
  const int factor = c.patch_size;
  if (height < factor || width < factor)
    throw std::invalid_argument(
        fmt::format("height {} or width {} is below the processor's factor {}", height, width, factor));
  check_aspect(height, width);
  const int longest = c.longest_edge();
  const double s = edge_scale(height, width, c.shortest_edge(), longest);
  const int h = height / 2, w = width / 2;  // the processor halves before rounding (one AR token per 32 px)
  int hb = std::max(factor, static_cast<int>(round_half_even(h * s / factor)) * factor);
  int wb = std::max(factor, static_cast<int>(round_half_even(w * s / factor)) * factor);
  if (std::max(hb, wb) > longest) {
    const double beta = double(std::max(hb, wb)) / longest;
    hb = std::max(factor, static_cast<int>(std::floor(hb / beta / factor)) * factor);
    wb = std::max(factor, static_cast<int>(std::floor(wb / beta / factor)) * factor);
  }
  return {hb, wb};
}

GlmPatches glm_process_image(const Image& image, const GlmProcessorConfig& c) {
  const auto [rh, rw] = glm_smart_resize(image.height, image.width, c);
  const Image img =
      rh == image.height && rw == image.width ? image : resize_pil(image, rw, rh, ResampleFilter::Bicubic);
  const int p = c.patch_size;
  GlmPatches out;
  out.grid_h = rh / p;
  out.grid_w = rw / p;
  const std::size_t row = 3 * static_cast<std::size_t>(p) * p;
  out.pixel_values.resize(static_cast<std::size_t>(out.patches()) * row);
  // rescale then normalize, each in float32 as the processor does: (x * (1/255) - mean) / std.
  const float rescale = 1.0f / 255.0f;
  std::size_t k = 0;
  for (int64_t gy = 0; gy < out.grid_h; ++gy)
    for (int64_t gx = 0; gx < out.grid_w; ++gx) {
      for (int ch = 0; ch < 3; ++ch)
        for (int py = 0; py < p; ++py)
          for (int px = 0; px < p; ++px) {
            const uint8_t v = img.pixel(static_cast<int>(gx) * p + px, static_cast<int>(gy) * p + py)[ch];
            out.pixel_values[k++] = (static_cast<float>(v) * rescale - c.mean[ch]) / c.std[ch];
          }
      out.patch_pos.insert(out.patch_pos.end(), {gy, gx});
      out.patch_grid.insert(out.patch_grid.end(), {out.grid_h, out.grid_w});
    }
  return out;
}

ArGrid glm_preview_grid(ArGrid t) {
  const double ratio = double(t.h) / double(t.w);
  return {static_cast<int64_t>(std::sqrt(ratio) * 16), static_cast<int64_t>(std::sqrt(1.0 / ratio) * 16)};
}

std::vector<int64_t> ArPositions::decode_column(int64_t k) const {
  return {decode[static_cast<std::size_t>(k)], decode[static_cast<std::size_t>(m + k)],
          decode[static_cast<std::size_t>(2 * m + k)]};
}

namespace {

// Three position rows (t, h, w) being filled, one column per token.
struct Axes {
  std::vector<int64_t> t, h, w;
  void push(int64_t tt, int64_t hh, int64_t ww) {
    t.push_back(tt);
    h.push_back(hh);
    w.push_back(ww);
  }
  // A grid starting at `base`: (base, base + row, base + col), row-major.
  void grid(int64_t base, ArGrid g) {
    for (int64_t r = 0; r < g.h; ++r)
      for (int64_t c = 0; c < g.w; ++c) push(base, base + r, base + c);
  }
  std::vector<int64_t> rows() const {
    std::vector<int64_t> out = t;
    out.insert(out.end(), h.begin(), h.end());
    out.insert(out.end(), w.begin(), w.end());
    return out;
  }
};

}  // namespace

ArPositions glm_ar_positions(const std::vector<int64_t>& ids, int64_t start_id, int64_t end_id,
                             const std::vector<ArGrid>& grids) {
  // get_rope_index pairs the i-th position after a start marker with the i-th end marker (zip: extra starts, such as
  // the final BOS, pair with nothing).
  std::vector<std::size_t> starts, ends;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == start_id) starts.push_back(i + 1);
    if (ids[i] == end_id) ends.push_back(i);
  }
  const std::size_t blocks = std::min({starts.size(), ends.size(), grids.size()});
  Axes prefill;
  int64_t pos = 0;
  std::size_t prev_end = 0;
  const auto text_run = [&](std::size_t count) {
    for (std::size_t k = 0; k < count; ++k, ++pos) prefill.push(pos, pos, pos);
  };
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::size_t start = starts[b], end = ends[b];
    if (start < prev_end || end < start)
      throw std::invalid_argument("AR prompt: image start and end markers are out of order");
    const ArGrid g = grids[b];
    if (static_cast<int64_t>(end - start) != g.h * g.w)
      throw std::invalid_argument(fmt::format("AR prompt: image block {} holds {} tokens, its grid {}x{} needs {}", b,
                                              end - start, g.h, g.w, g.h * g.w));
    text_run(start - prev_end);
    prefill.grid(pos, g);
    pos += std::max(g.h, g.w);
    prev_end = end;
  }
  text_run(ids.size() - prev_end);  // the last end marker and everything after it

  Axes decode;  // the grids no block completes, last first, then one final entry
  int64_t d = pos;
  for (std::size_t i = grids.size(); i > blocks; --i) {
    decode.grid(d, grids[i - 1]);
    d += std::max(grids[i - 1].h, grids[i - 1].w);
  }
  decode.push(d, d, d);
  ArPositions out;
  out.n = static_cast<int64_t>(ids.size());
  out.m = static_cast<int64_t>(decode.t.size());
  out.prefill = prefill.rows();
  out.decode = decode.rows();
  return out;
}

void glm_dit_rope(int64_t h, int64_t w, int64_t head_dim, std::vector<float>& cos, std::vector<float>& sin) {
  if (head_dim % 4 != 0) throw std::invalid_argument(fmt::format("DiT head dim {} is not divisible by 4", head_dim));
  const int64_t n = head_dim / 4;
  std::vector<float> freq(static_cast<std::size_t>(n));
  // 1 / theta^(arange(0, dim, 2)[: dim/2] / dim) with dim = head_dim / 2, in float32 as torch computes it.
  for (int64_t k = 0; k < n; ++k)
    freq[static_cast<std::size_t>(k)] =
        1.0f / std::pow(10000.0f, static_cast<float>(2 * k) / static_cast<float>(head_dim / 2));
  cos.assign(static_cast<std::size_t>(h * w * head_dim), 0.0f);
  sin.assign(cos.size(), 0.0f);
  for (int64_t r = 0; r < h; ++r)
    for (int64_t c = 0; c < w; ++c) {
      float* co = cos.data() + (r * w + c) * head_dim;
      float* si = sin.data() + (r * w + c) * head_dim;
      for (int64_t k = 0; k < n; ++k) {
        const float a = static_cast<float>(r) * freq[static_cast<std::size_t>(k)];
        const float b = static_cast<float>(c) * freq[static_cast<std::size_t>(k)];
        for (int64_t half : {int64_t{0}, head_dim / 2}) {
          co[half + k] = std::cos(a);
          si[half + k] = std::sin(a);
          co[half + n + k] = std::cos(b);
          si[half + n + k] = std::sin(b);
        }
      }
    }
}

GlmTimesteps glm_timesteps_from_name(const std::string& name) {
  if (name == "unshifted") return GlmTimesteps::Unshifted;
  if (name == "shifted") return GlmTimesteps::Shifted;
  throw std::invalid_argument(fmt::format("GLM-Image timesteps '{}': use 'unshifted' or 'shifted'", name));
}

Schedule glm_image_schedule(const SchedulerConfig& config, int num_steps, int64_t image_seq_len, GlmTimesteps mode) {
  Schedule s = glm_schedule(config, num_steps, compute_mu(MuRule::Sqrt, config, image_seq_len, num_steps));
  if (mode == GlmTimesteps::Unshifted) {
    const double step = (1.0 - double(config.num_train_timesteps)) / double(num_steps);
    for (int i = 0; i < num_steps; ++i)
      s.timesteps[static_cast<std::size_t>(i)] =
          static_cast<float>(static_cast<int64_t>(double(i) * step + double(config.num_train_timesteps)));
  }
  return s;
}

}  // namespace dg
