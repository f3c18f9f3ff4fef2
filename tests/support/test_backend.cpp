#include "test_backend.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

namespace dg::test {

namespace {

uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  return h;
}

class TestPipeline : public Pipeline {
 public:
  EditResult edit(const EditRequest& r) override {
    if (const char* log = std::getenv("DG_TESTPIPE_CALL_LOG")) {
      const std::string line = std::to_string(r.index) + "\n";
      const int fd = ::open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (fd >= 0) {
        [[maybe_unused]] auto n = ::write(fd, line.data(), line.size());
        ::close(fd);
      }
    }
    if (const char* d = std::getenv("DG_TESTPIPE_DELAY_MS"))
      std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(d)));
    if (r.instruction.find("INPUT_ERROR") != std::string::npos)
      throw InputError("test pipeline: the prompt does not fit the template (simulated)");
    if (r.instruction.find("FAIL_REPEATABLY") != std::string::npos)
      throw RepeatableError("test pipeline: the seeded sampler drew an unusable token (simulated)");
    if (r.instruction.find("FAIL_ALWAYS") != std::string::npos)
      throw std::runtime_error("test pipeline: out of memory (simulated)");
    if (r.instruction.find("FAIL_ONCE") != std::string::npos) {
      std::lock_guard<std::mutex> lock(mu_);
      if (failed_once_.insert(r.index).second) throw std::runtime_error("test pipeline: transient failure (simulated)");
    }
    if (r.on_step)  // the engine's step callback, as BundlePipeline::denoise calls it
      for (int k = 1; k <= r.params.steps; ++k) r.on_step("denoise", k, r.params.steps);
    return {test_pipeline_output(r), {{"denoise", 0.001}}, {}, {}};
  }

 private:
  std::mutex mu_;
  std::set<int64_t> failed_once_;
};

}  // namespace

Image test_pipeline_output(const EditRequest& r) {
  uint64_t h = mix(r.seed, static_cast<uint64_t>(r.params.steps));
  for (unsigned char c : r.instruction) h = mix(h, c);
  for (const auto& img : r.images) {
    h = mix(h, static_cast<uint64_t>(img.width) * 131 + img.height);
    for (std::size_t k = 0; k < img.rgb.size(); k += 97) h = mix(h, img.rgb[k]);
  }
  Image out = r.images.front();
  for (std::size_t k = 0; k < out.rgb.size(); ++k)
    out.rgb[k] = static_cast<uint8_t>(out.rgb[k] ^ ((h >> (8 * (k % 8))) & 0xff));
  return out;
}

Backend test_backend() {
  Backend b;
  b.version = " (test pipeline)";
  b.resolve_devices = [](const EngineOptions& o, std::optional<int> replicas) {
    if (o.device != "auto" && o.device != "cpu") throw DeviceError("device", "the test backend is CPU-only");
    return std::vector<std::string>(static_cast<std::size_t>(replicas.value_or(1)), "cpu");
  };
  b.make_pipeline = [](const PipelineConfig&) -> std::unique_ptr<Pipeline> { return std::make_unique<TestPipeline>(); };
  return b;
}

}  // namespace dg::test
