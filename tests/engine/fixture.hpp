#pragma once
// What every engine test shares: one tiny bundle per implemented type of the model table (made on first
// use, once per process), deterministic test images, and a runner that calls a pipeline the way the
// model stage does.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "diffgentor/model_registry.hpp"
#include "process.hpp"

namespace dg::test {

/// The tiny bundle of `type` (any implemented type; "flux2_klein_base" is klein with is_distilled false).
const std::string& tiny_bundle(const std::string& type);

/// A w x h image whose every pixel depends on its position and `seed`.
Image pattern(int w, int h, int seed);

/// The largest difference of one channel of one pixel; a size mismatch is a test failure.
int max_pixel_diff(const Image& a, const Image& b);

/// A counter of an EditResult (e.g. "transformer_calls"), or -1.
int64_t counter(const EditResult& result, const std::string& name);

/// One pipeline of a type on its tiny bundle, on the CPU.
struct Runner {
  const ModelSpec* spec;
  std::unique_ptr<Pipeline> pipe;
  explicit Runner(const std::string& type, const std::string& dtype = "bfloat16", const std::string& bundle = "");
  /// One row with `steps` steps; unset parameters take the model's defaults (merge_params).
  EditResult run(std::vector<Image> images, const std::string& text, uint64_t seed, int steps = 2,
                 std::optional<double> guidance = std::nullopt, std::optional<double> true_cfg = std::nullopt,
                 std::optional<std::string> negative = std::nullopt);
};

}  // namespace dg::test
