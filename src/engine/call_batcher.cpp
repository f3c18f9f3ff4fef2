// Batched component calls (include/diffgentor/call_batcher.hpp).
#include "diffgentor/call_batcher.hpp"

#include <ATen/ATen.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>

namespace dg {

namespace {

bool batch_first(const TensorSpec& t) { return !t.shape.empty() && t.shape[0] == "B"; }

// The symbol a mask input of `spec` pads (Qwen's text length "L"), or "".
const std::string& pad_symbol(const ComponentSpec& spec) {
  static const std::string none;
  for (const TensorSpec& t : spec.inputs)
    if (!t.pads.empty()) return t.pads;
  return none;
}

// The length of the padded symbol in a call: dim 1 of its mask input [B, X]; 0 without a mask.
int64_t padded_length(const ComponentCall& call) {
  for (std::size_t k = 0; k < call.spec->inputs.size(); ++k)
    if (!call.spec->inputs[k].pads.empty()) return call.inputs[k].toTensor().size(1);
  return 0;
}

// Whether dim d of input spec `t` is the padded symbol.
bool padded_dim(const TensorSpec& t, std::size_t d, const std::string& symbol) {
  return !symbol.empty() && d < t.shape.size() && t.shape[d] == symbol;
}

// `x` with every dim named `symbol` extended to `length` with zeros (false for a mask).
at::Tensor pad_to(at::Tensor x, const TensorSpec& t, const std::string& symbol, int64_t length) {
  for (std::size_t d = 0; d < t.shape.size(); ++d) {
    const auto dim = static_cast<int64_t>(d);
    if (!padded_dim(t, d, symbol) || x.size(dim) >= length) continue;
    std::vector<int64_t> shape = x.sizes().vec();
    shape[d] = length - x.size(dim);
    x = at::cat({x, at::zeros(shape, x.options())}, dim);
  }
  return x;
}

// `x` with every dim named `symbol` cut to `length` (an output of a padded invocation, back to the call's own).
at::Tensor unpad(at::Tensor x, const TensorSpec& t, const std::string& symbol, int64_t length) {
  for (std::size_t d = 0; d < t.shape.size(); ++d)
    if (padded_dim(t, d, symbol) && x.size(static_cast<int64_t>(d)) > length)
      x = x.narrow(static_cast<int64_t>(d), 0, length);
  return x;
}

// Whether `shorter` is `longer` cut along the padded dims (a RoPE table of a shorter text is the prefix of the
// longer text's: positions count up from the same start).
bool prefix_of(const at::Tensor& shorter, const at::Tensor& longer, const TensorSpec& t, const std::string& symbol) {
  at::Tensor cut = longer;
  for (std::size_t d = 0; d < t.shape.size(); ++d) {
    const auto dim = static_cast<int64_t>(d);
    if (padded_dim(t, d, symbol)) {
      if (shorter.size(dim) > longer.size(dim)) return false;
      cut = cut.narrow(dim, 0, shorter.size(dim));
    } else if (shorter.size(dim) != longer.size(dim)) {
      return false;
    }
  }
  return at::equal(shorter, cut);
}

// One invocation of the call's method with `inputs`; with call.timed_device, timed on the device into `span`.
c10::IValue invoke(const ComponentCall& call, std::vector<c10::IValue> inputs, std::shared_ptr<DeviceSpan>& span) {
  if (call.timed_device >= 0)
    span = std::make_shared<DeviceSpan>(c10::Device(c10::DeviceType::CUDA, call.timed_device));
  c10::IValue out = call.module->get_method(call.spec->method)(std::move(inputs));
  if (span) span->end();
  return out;
}

// Rows [offset, offset + rows) of every batch output of `out`, cut back to the call's padded `length`.
c10::IValue slice_output(const ComponentSpec& spec, const c10::IValue& out, int64_t offset, int64_t rows,
                         int64_t length) {
  auto part = [&](const c10::IValue& v, std::size_t k) -> c10::IValue {
    if (k >= spec.outputs.size() || !v.isTensor()) return v;
    at::Tensor x = v.toTensor();
    if (batch_first(spec.outputs[k])) x = x.narrow(0, offset, rows);
    return length > 0 ? unpad(x, spec.outputs[k], pad_symbol(spec), length) : x;
  };
  if (!out.isTuple()) return part(out, 0);
  std::vector<c10::IValue> elems;
  const auto& in = out.toTupleRef().elements();
  for (std::size_t k = 0; k < in.size(); ++k) elems.push_back(part(in[k], k));
  return c10::ivalue::Tuple::create(std::move(elems));
}

// The batch size of a call: dim 0 of its first batch input.
int64_t rows_of(const ComponentCall& call) {
  for (std::size_t k = 0; k < call.spec->inputs.size() && k < call.inputs.size(); ++k)
    if (batch_first(call.spec->inputs[k]) && call.inputs[k].isTensor()) return call.inputs[k].toTensor().size(0);
  return 1;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void run_alone(ComponentCall& call, int64_t id) {
  call.invocation = id;
  call.shared = 1;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    call.output = invoke(call, call.inputs, call.span);
  } catch (...) {
    call.error = std::current_exception();
  }
  call.seconds = since(t0);
}

std::atomic<int64_t> g_invocations{0};

}  // namespace

DeviceSpan::DeviceSpan(c10::Device device)
    : stream_(c10::impl::getDeviceGuardImpl(device.type())->getStream(device)),
      start_(device.type(), c10::EventFlag::BACKEND_DEFAULT),
      end_(device.type(), c10::EventFlag::BACKEND_DEFAULT) {
  start_.record(stream_);
}

void DeviceSpan::end() { end_.record(stream_); }

double DeviceSpan::seconds() const {
  end_.synchronize();
  return start_.elapsedTime(end_) * 1e-3;  // milliseconds
}

bool batchable(const ComponentSpec& spec) {
  bool any = false;
  for (const auto* list : {&spec.inputs, &spec.outputs})
    for (const TensorSpec& t : *list)
      for (std::size_t d = 0; d < t.shape.size(); ++d) {
        if (t.shape[d] == "1") return false;  // a batch pinned to one (GLM-Image's KV, the AR methods)
        if (t.shape[d] == "B") {
          if (d != 0) return false;
          any = any || list == &spec.inputs;
        }
      }
  return any;
}

bool mergeable(const ComponentCall& a, const ComponentCall& b) {
  if (a.spec != b.spec || a.tag != b.tag || a.module->_ivalue() != b.module->_ivalue()) return false;
  if (!batchable(*a.spec) || a.inputs.size() != b.inputs.size() || a.inputs.size() != a.spec->inputs.size())
    return false;
  const std::string& symbol = pad_symbol(*a.spec);
  for (std::size_t k = 0; k < a.inputs.size(); ++k) {
    if (!a.inputs[k].isTensor() || !b.inputs[k].isTensor()) return false;
    const at::Tensor &x = a.inputs[k].toTensor(), &y = b.inputs[k].toTensor();
    if (x.unsafeGetTensorImpl() == y.unsafeGetTensorImpl()) continue;
    if (x.scalar_type() != y.scalar_type() || x.device() != y.device() || x.dim() != y.dim()) return false;
    const TensorSpec& t = a.spec->inputs[k];
    if (batch_first(t)) {
      for (int64_t d = 1; d < x.dim(); ++d)
        if (x.size(d) != y.size(d) && !padded_dim(t, static_cast<std::size_t>(d), symbol)) return false;
    } else if (x.sizes() == y.sizes()
                   ? !at::equal(x, y)
                   : !(x.numel() <= y.numel() ? prefix_of(x, y, t, symbol) : prefix_of(y, x, t, symbol))) {
      return false;
    }
  }
  return true;
}

void run_calls(const std::vector<ComponentCall*>& calls) {
  std::vector<bool> placed(calls.size(), false);
  for (std::size_t i = 0; i < calls.size(); ++i) {
    if (placed[i]) continue;
    std::vector<ComponentCall*> group{calls[i]};
    for (std::size_t j = i + 1; j < calls.size(); ++j)
      if (!placed[j] && mergeable(*calls[i], *calls[j])) group.push_back(calls[j]), placed[j] = true;
    const int64_t id = g_invocations++;
    if (group.size() == 1) {
      run_alone(*group[0], id);
      continue;
    }
    const ComponentCall& first = *group[0];
    const std::string& symbol = pad_symbol(*first.spec);
    int64_t length = 0;  // the padded symbol's length in the invocation: the longest of the group's
    for (const ComponentCall* c : group) length = std::max(length, padded_length(*c));
    std::vector<c10::IValue> merged;
    for (std::size_t k = 0; k < first.inputs.size(); ++k) {
      const TensorSpec& t = first.spec->inputs[k];
      if (!batch_first(t)) {  // shared: the longest one where lengths differ (the others are its prefixes)
        const ComponentCall* longest = group[0];
        for (const ComponentCall* c : group)
          if (c->inputs[k].toTensor().numel() > longest->inputs[k].toTensor().numel()) longest = c;
        merged.push_back(longest->inputs[k]);
        continue;
      }
      std::vector<at::Tensor> parts;
      for (const ComponentCall* c : group) parts.push_back(pad_to(c->inputs[k].toTensor(), t, symbol, length));
      merged.emplace_back(at::cat(parts, 0));
    }
    c10::IValue out;
    std::shared_ptr<DeviceSpan> span;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      out = invoke(first, std::move(merged), span);
    } catch (...) {  // e.g. out of memory at the larger batch: each call alone, so only a bad one fails
      for (ComponentCall* c : group) run_alone(*c, g_invocations++);
      continue;
    }
    const double seconds = since(t0);
    int64_t offset = 0;
    for (ComponentCall* c : group) {
      c->seconds = seconds;
      c->span = span;
      const int64_t rows = rows_of(*c);
      c->output = slice_output(*c->spec, out, offset, rows, padded_length(*c));
      c->invocation = id;
      c->shared = static_cast<int64_t>(group.size());
      offset += rows;
    }
  }
}

void CallBatcher::run(const std::vector<ComponentCall*>& calls) {
  std::unique_lock<std::mutex> lock(mu_);
  pending_.insert(pending_.end(), calls.begin(), calls.end());
  ++waiting_;
  const uint64_t round = round_;
  if (waiting_ == live_)
    execute(lock);
  else
    cv_.wait(lock, [&] { return round_ != round; });
  lock.unlock();
  for (const ComponentCall* c : calls)
    if (c->error) std::rethrow_exception(c->error);
}

void CallBatcher::leave() {
  std::unique_lock<std::mutex> lock(mu_);
  --live_;
  if (live_ > 0 && waiting_ == live_) execute(lock);  // the rows still here were waiting for this one
}

void CallBatcher::execute(std::unique_lock<std::mutex>& lock) {
  std::vector<ComponentCall*> batch;
  batch.swap(pending_);
  lock.unlock();  // every live row is blocked in run(): nobody touches pending_ meanwhile
  run_calls(batch);
  lock.lock();
  waiting_ = 0;
  ++round_;
  cv_.notify_all();
}

}  // namespace dg
