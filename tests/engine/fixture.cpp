#include "fixture.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "diffgentor/synthetic_image.hpp"

namespace fs = std::filesystem;

namespace dg::test {

const std::string& tiny_bundle(const std::string& type) {
  static TempDir dir;
  static std::map<std::string, std::string> made;
  auto it = made.find(type);
  if (it != made.end()) return it->second;
  const std::string out = dir / type;
  if (type == "flux2_klein_base") {  // the base (undistilled) klein: is_distilled false in model_index.json
    fs::copy(tiny_bundle("flux2_klein"), out, fs::copy_options::recursive);
    nlohmann::json index = nlohmann::json::parse(std::ifstream(out + "/model_index.json"));
    index["is_distilled"] = false;
    std::ofstream(out + "/model_index.json") << index.dump();
  } else {
    const ModelSpec* spec = find_model(type);
    const ModelEntry* entry = find_model_entry(type);
    if (!spec || !entry) throw std::invalid_argument("no tiny bundle for " + type);
    entry->make_tiny(*spec, out, {"tiny", 0});
  }
  return made[type] = out;
}

Image pattern(int w, int h, int seed) { return synthetic_image(w, h, seed); }

int64_t counter(const EditResult& r, const std::string& name) {
  for (const auto& [k, v] : r.counters)
    if (k == name) return v;
  return -1;
}

int max_pixel_diff(const Image& a, const Image& b) {
  EXPECT_EQ(a.width, b.width);
  EXPECT_EQ(a.height, b.height);
  int worst = 0;
  for (std::size_t k = 0; k < a.rgb.size() && k < b.rgb.size(); ++k)
    worst = std::max(worst, std::abs(a.rgb[k] - b.rgb[k]));
  return worst;
}

Runner::Runner(const std::string& type, const std::string& dtype, const std::string& bundle)
    : spec(find_model(type == "flux2_klein_base" ? "flux2_klein" : type)) {
  pipe =
      find_model_entry(spec->type)
          ->make_pipeline(PipelineConfig{spec, bundle.empty() ? tiny_bundle(type) : bundle, "cpu", dtype, {}, {}, {}});
}

EditResult Runner::run(std::vector<Image> images, const std::string& text, uint64_t seed, int steps,
                       std::optional<double> guidance, std::optional<double> true_cfg,
                       std::optional<std::string> negative) {
  EditRequest r;
  r.images = std::move(images);
  r.instruction = text;
  r.seed = seed;
  r.params = merge_params(*spec, {steps, guidance, true_cfg, negative});
  return pipe->edit(r);
}

}  // namespace dg::test
