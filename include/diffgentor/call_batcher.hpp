#pragma once
/// Batched component calls (docs/batching.md). A call of a component method names its module, its contract entry
/// and its inputs; calls whose inputs agree under the contract run as one invocation with the batch inputs
/// concatenated, and each call gets its own slice of the output. CallBatcher gathers the calls of several rows
/// that run at once (one thread each) so that the rows' transformer steps, VAE passes and fixed-length text
/// encoders run as batches.
#include <ATen/core/ivalue.h>
#include <c10/core/Event.h>
#include <c10/core/Stream.h>
#include <torch/csrc/jit/api/module.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <vector>

#include "diffgentor/bundle_contract.hpp"

namespace dg {

/// The device time of one invocation on CUDA, where kernels run after the host has moved on: two timing events
/// recorded on the device's current stream, before the invocation (construction) and after it (end()). Recording
/// waits for nothing; seconds() waits for the end event, so it is read once the device is done anyway (after the
/// denoising loop's last step).
class DeviceSpan {
 public:
  explicit DeviceSpan(c10::Device device);
  void end();
  double seconds() const;

 private:
  c10::Stream stream_;
  c10::Event start_, end_;
};

/// One call of one component method, as a row asks for it.
struct ComponentCall {
  torch::jit::Module* module = nullptr;
  const ComponentSpec* spec = nullptr;  ///< its contract entry: which inputs and outputs carry the batch dim
  std::vector<c10::IValue> inputs;
  int tag = 0;               ///< calls merge only with calls of the same tag (split CFG: the branch)
  c10::IValue output;        ///< set by run_calls: this call's part of the invocation's output
  std::exception_ptr error;  ///< set by run_calls instead of `output` when the call failed
  int64_t invocation = -1;   ///< set by run_calls: an id shared by the calls that ran as one invocation
  int64_t shared = 0;        ///< set by run_calls: how many calls that invocation ran (1 = alone)
  double seconds = 0;        ///< set by run_calls: the invocation's wall time (on CUDA: its launch, not its kernels)
  /// >= 0: the invocation is timed on this CUDA device as well (PipelineConfig::device_timing): run_calls sets `span`,
  /// shared by the calls of a merged invocation.
  int64_t timed_device = -1;
  std::shared_ptr<DeviceSpan> span;
};

/// Whether a method can batch at all: every "B" of its contract shapes is the first dim of an input or output, at
/// least one input has it, and no shape has a batch pinned to one (a literal "1": GLM-Image's DiT with its KV
/// [layers, 1, ...], the AR methods, FLUX.2's upsampler_vision).
bool batchable(const ComponentSpec& spec);

/// Whether `a` and `b` can run as one invocation: same module, method and tag, a batchable method, every input
/// whose shape starts with "B" of the same dtype, device and trailing sizes, every other input the same tensor or
/// an equal one. Where the method has a mask input with `pads: X` (Qwen's text mask), sizes of X may differ: batch
/// inputs are padded to the longest X with zeros (false in the mask), and a shared input with an X dim must be the
/// longest one's prefix (a RoPE table).
bool mergeable(const ComponentCall& a, const ComponentCall& b);

/// Runs `calls`: every group of mergeable calls as one invocation (batch inputs concatenated along dim 0 in call
/// order, the other inputs taken from the first call, batch outputs split back). An invocation that throws is
/// retried call by call, so one bad call fails alone. Never throws: a failure lands in the call's `error`.
void run_calls(const std::vector<ComponentCall*>& calls);

/// The rendezvous of the rows of one batch: each row (one thread) hands its calls to run() and blocks; once every
/// row that has not left is blocked there, the last one to arrive runs all the waiting calls with run_calls and
/// wakes the others. Rows compute between calls in parallel; component calls run one invocation at a time.
class CallBatcher {
 public:
  explicit CallBatcher(int rows) : live_(rows) {}
  /// Runs this row's `calls` together with the other rows' (see above); rethrows this row's first call error.
  void run(const std::vector<ComponentCall*>& calls);
  /// This row makes no more calls (it finished or failed); must be called exactly once per row.
  void leave();

 private:
  void execute(std::unique_lock<std::mutex>& lock);  ///< runs pending_ (lock held on entry and exit)
  std::mutex mu_;
  std::condition_variable cv_;
  int live_;         ///< rows that have not left
  int waiting_ = 0;  ///< rows blocked in run()
  std::vector<ComponentCall*> pending_;
  uint64_t round_ = 0;  ///< counts executions, so that a waiting row knows its calls ran
};

}  // namespace dg
