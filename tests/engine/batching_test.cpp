// Batched component calls (docs/batching.md): the merge rules of run_calls on a scripted module, the rendezvous
// of CallBatcher across threads, and on every type's tiny bundle in float32: CFG fused against split, and rows run
// as one batch (edit_batch) against the same rows run alone. The bound for both is docs/parity.md's float32
// tolerance for the stage (noise_pred_0 1e-3, final_latents 1e-2 of max |value|): batching changes only the
// order of float sums (the GEMMs' blocking, the masked attention), measured at 1.6e-6 at most on these bundles
// (the test prints each figure); the 8-bit images differ by at most one level.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <torch/script.h>

#include <map>
#include <mutex>
#include <thread>

#include "diffgentor/bundle_pipeline.hpp"
#include "diffgentor/call_batcher.hpp"
#include "fixture.hpp"

using namespace dg;
using dg::test::counter;
using dg::test::max_pixel_diff;
using dg::test::pattern;
using dg::test::tiny_bundle;

namespace {

// forward(x [B, L, 2], table [L, 2], mask [B, L] pads L) -> (y [B, 2], z [B, L, 2]); fails on a NaN in x.
torch::jit::Module scripted() {
  torch::jit::Module m("m");
  m.define(R"JIT(
def forward(self, x: Tensor, table: Tensor, mask: Tensor):
    if bool(x.isnan().any()):
        x = x.select(0, x.size(0))  # out of range: the call fails
    z = (x + table) * mask.unsqueeze(-1).to(x.dtype)  # pads (mask false) reach no output
    return z.sum(1), z
)JIT");
  return m;
}

ComponentSpec scripted_spec() {
  ComponentSpec s;
  s.name = "m";
  s.inputs = {
      {"x", "float32", {"B", "L", "2"}, ""}, {"table", "float32", {"L", "2"}, ""}, {"mask", "bool", {"B", "L"}, "L"}};
  s.outputs = {{"y", "float32", {"B", "2"}, ""}, {"z", "float32", {"B", "L", "2"}, ""}};
  return s;
}

ComponentCall make_call(torch::jit::Module& m, const ComponentSpec& spec, const at::Tensor& x, const at::Tensor& table,
                        int tag = 0) {
  ComponentCall c;
  c.module = &m;
  c.spec = &spec;
  c.inputs = {x, table, at::ones({x.size(0), x.size(1)}, at::kBool)};
  c.tag = tag;
  return c;
}

at::Tensor out(const ComponentCall& c, int k) { return c.output.toTupleRef().elements()[k].toTensor(); }

double rel(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>() / b.abs().max().item<double>();
}

// One row's setting per type: the parameters that turn CFG on.
EffectiveParams cfg_params(const std::string& type) {
  const ModelSpec& spec = *find_model(type == "flux2_klein_base" ? "flux2_klein" : type);
  if (type.rfind("qwen", 0) == 0 || type == "flux1_kontext")
    return merge_params(spec, {2, std::nullopt, 4.0, "blurry, dark"});
  return merge_params(spec, {2, 4.0, std::nullopt, std::nullopt});
}

// A float32 pipeline of `type` whose stage tap keeps each thread's "noise", "noise_pred_0" and "final_latents".
struct Tapped {
  std::unique_ptr<Pipeline> pipe;
  std::mutex mu;
  std::map<std::thread::id, std::map<std::string, at::Tensor>> by_thread;
  Tapped(const std::string& type, bool fuse) {
    const ModelSpec* spec = find_model(type == "flux2_klein_base" ? "flux2_klein" : type);
    PipelineConfig cfg{spec, tiny_bundle(type), "cpu", "float32", {}, {}, {}};
    cfg.fuse_cfg = fuse;
    pipe = find_model_entry(spec->type)->make_pipeline(cfg);
    dynamic_cast<BundlePipeline&>(*pipe).set_stage_tap([this](const std::string& stage, const at::Tensor& v) {
      std::lock_guard<std::mutex> lock(mu);
      by_thread[std::this_thread::get_id()][stage] = v.clone();
    });
  }
  // The taps of the row whose noise equals `noise` (the rows of a batch run on threads of their own).
  std::map<std::string, at::Tensor>& row(const at::Tensor& noise) {
    for (auto& [id, taps] : by_thread)
      if (at::equal(taps.at("noise"), noise)) return taps;
    throw std::runtime_error("no row with that noise");
  }
};

EditRequest request(const std::string& type, Image img, const std::string& text, uint64_t seed) {
  EditRequest r;
  r.images = {std::move(img)};
  r.instruction = text;
  r.seed = seed;
  r.params = cfg_params(type);
  return r;
}

}  // namespace

TEST(CallBatcher, MergesPadsAndIsolatesFailures) {
  c10::InferenceMode guard;
  torch::jit::Module m = scripted();
  const ComponentSpec spec = scripted_spec();
  EXPECT_TRUE(batchable(spec));
  for (const ComponentSpec& c : bundle_components("glm_image"))  // KV with a batch pinned to one
    if (c.name == "transformer") {
      EXPECT_FALSE(batchable(c)) << c.method;
    }
  for (const ComponentSpec& c : bundle_components("qwen")) {
    if (c.name == "transformer") {
      EXPECT_TRUE(batchable(c));
    } else if (c.name == "text_encoder") {
      EXPECT_FALSE(batchable(c));  // position_ids [3, B, L]: B not first
    }
  }

  const at::Tensor table = at::randn({5, 2});
  ComponentCall a = make_call(m, spec, at::randn({1, 3, 2}), table.narrow(0, 0, 3).clone());  // a prefix: pads
  ComponentCall b = make_call(m, spec, at::randn({2, 5, 2}), table);
  ComponentCall c = make_call(m, spec, at::randn({1, 5, 2}), table + 1);  // another table: alone
  ComponentCall d = make_call(m, spec, at::randn({1, 5, 2}), table, 1);   // another tag: alone
  ComponentCall e = make_call(m, spec, at::randn({1, 4, 2}), table.narrow(0, 0, 4));
  run_calls({&a, &b, &c, &d, &e});
  EXPECT_EQ(a.invocation, b.invocation);
  EXPECT_EQ(a.invocation, e.invocation);
  EXPECT_EQ(a.shared, 3);
  EXPECT_NE(c.invocation, a.invocation);
  EXPECT_NE(d.invocation, a.invocation);
  EXPECT_NE(c.invocation, d.invocation);
  EXPECT_EQ(c.shared, 1);
  for (ComponentCall* call : {&a, &b, &c, &d, &e}) {  // each output equals the call run alone, padding cut off
    ASSERT_FALSE(call->error);
    const auto alone = m.forward(call->inputs).toTupleRef().elements();
    EXPECT_EQ(out(*call, 1).sizes(), alone[1].toTensor().sizes());
    EXPECT_TRUE(at::allclose(out(*call, 0), alone[0].toTensor(), 1e-6, 1e-6));
    EXPECT_TRUE(at::allclose(out(*call, 1), alone[1].toTensor(), 1e-6, 1e-6));
  }

  // A failing call in a merged invocation: the group is retried call by call and only that call fails.
  ComponentCall good = make_call(m, spec, at::randn({1, 5, 2}), table);
  ComponentCall bad = make_call(m, spec, at::full({1, 5, 2}, NAN), table);
  run_calls({&good, &bad});
  EXPECT_FALSE(good.error);
  EXPECT_TRUE(bad.error);
  EXPECT_NE(good.invocation, bad.invocation);
  EXPECT_TRUE(at::allclose(out(good, 0), m.forward(good.inputs).toTupleRef().elements()[0].toTensor()));
}

TEST(CallBatcher, GathersTheRowsOfABatch) {
  torch::jit::Module m = scripted();
  const ComponentSpec spec = scripted_spec();
  const at::Tensor table = at::randn({4, 2});
  constexpr int kRows = 3;
  CallBatcher batcher(kRows);
  std::vector<std::vector<ComponentCall>> calls(kRows);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRows; ++r)
    threads.emplace_back([&, r] {
      c10::InferenceMode guard;
      const int n = r == 0 ? 1 : 3;  // row 0 leaves after one call: the others go on without it
      for (int k = 0; k < n; ++k) {
        calls[r].push_back(make_call(m, spec, at::randn({1, 4, 2}), table));
        batcher.run({&calls[r].back()});
      }
      batcher.leave();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(calls[0][0].invocation, calls[1][0].invocation);  // the first round: all three rows in one invocation
  EXPECT_EQ(calls[0][0].shared, 3);
  for (int k = 1; k < 3; ++k) {
    EXPECT_EQ(calls[1][k].invocation, calls[2][k].invocation);
    EXPECT_EQ(calls[1][k].shared, 2);
  }
  for (auto& row : calls)
    for (auto& c : row) EXPECT_TRUE(at::allclose(out(c, 1), m.forward(c.inputs).toTupleRef().elements()[1].toTensor()));
}

TEST(Batching, CfgFusedMatchesSplit) {
  for (const std::string type : {"qwen", "flux1_kontext", "flux2_klein_base", "longcat", "glm_image"}) {
    Tapped fused(type, true), split(type, false);
    const EditRequest r = request(type, pattern(96, 64, 1), "make the sky purple", 5);
    const EditResult a = fused.pipe->edit(r), b = split.pipe->edit(r);
    auto &ta = fused.by_thread.begin()->second, &tb = split.by_thread.begin()->second;
    const double pred = rel(ta.at("noise_pred_0"), tb.at("noise_pred_0")),
                 last = rel(ta.at("final_latents"), tb.at("final_latents"));
    EXPECT_LE(pred, 1e-3) << type;
    EXPECT_LE(last, 1e-2) << type;
    EXPECT_LE(max_pixel_diff(a.image, b.image), 1) << type;
    std::printf("%-18s fused vs split: noise_pred_0 %.2g, final_latents %.2g\n", type.c_str(), pred, last);
    EXPECT_EQ(counter(a, "transformer_calls"), 4) << type;  // 2 steps x 2 branches either way
    EXPECT_EQ(counter(b, "transformer_passes"), 4) << type;
    // GLM-Image's DiT carries its references' KV with a batch of one: its branches never fuse.
    EXPECT_EQ(counter(a, "transformer_passes"), type == "glm_image" ? 4 : 2) << type;
    EXPECT_EQ(counter(a, "transformer_batch"), type == "glm_image" ? 1 : 2) << type;
  }
}

TEST(Batching, RowsBatchedMatchRowsAlone) {
  for (const std::string type :
       {"qwen", "qwen_singleimg", "flux2", "flux1_kontext", "flux2_klein_base", "longcat", "glm_image"}) {
    // Two rows of one size with prompts of different lengths (Qwen pads the shorter), one of another size.
    const std::vector<EditRequest> reqs{request(type, pattern(96, 64, 1), "make the sky purple", 5),
                                        request(type, pattern(96, 64, 2), "add a small red boat on the water", 6),
                                        request(type, pattern(80, 80, 3), "make it night", 7)};
    Tapped batched(type, true), alone(type, true);
    const std::vector<BatchOutcome> outs = batched.pipe->edit_batch(reqs);
    ASSERT_EQ(outs.size(), reqs.size());
    for (std::size_t k = 0; k < reqs.size(); ++k) {
      ASSERT_FALSE(outs[k].error) << type << " row " << k;
      alone.by_thread.clear();
      const EditResult one = alone.pipe->edit(reqs[k]);
      auto& ref = alone.by_thread.begin()->second;
      auto& got = batched.row(ref.at("noise"));
      const double last = rel(got.at("final_latents"), ref.at("final_latents"));
      EXPECT_LE(last, 1e-2) << type << " row " << k;
      EXPECT_LE(max_pixel_diff(outs[k].result.image, one.image), 1) << type << " row " << k;
      std::printf("%-18s row %zu batched vs alone: final_latents %.2g, transformer_batch %lld\n", type.c_str(), k, last,
                  static_cast<long long>(counter(outs[k].result, "transformer_batch")));
      // Rows 0 and 1 share every DiT invocation (with both branches where CFG fuses); row 2's size differs.
      const bool cfg = type != "flux2", fuses = cfg && type != "glm_image";
      const int64_t widest = counter(outs[k].result, "transformer_batch");
      if (type == "glm_image")
        EXPECT_EQ(widest, 1) << type;
      else
        EXPECT_EQ(widest, k < 2 ? (fuses ? 4 : 2) : (fuses ? 2 : 1)) << type << " row " << k;
    }
  }
}
