// Model-level CPU offload's bookkeeping (include/diffgentor/residency.hpp): the rule of diffusers'
// enable_model_cpu_offload (one component on the device at a time in a sequential pipeline; the previous one leaves
// when the next one runs), leases that overlap, and a failed upload. The moves are recorded, not made: the engine
// test (tests/engine/cpu_offload_test.cpp) runs the real moves.
#include "diffgentor/residency.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using dg::Residency;

namespace {

struct Log {
  std::vector<std::string> moves;  // "+name" uploaded, "-name" evicted
  std::string fail;                // an upload of this name throws
  Residency::Move move() {
    return [this](const std::string& name, bool up) {
      if (up && name == fail) throw std::runtime_error("out of device memory");
      moves.push_back((up ? "+" : "-") + name);
    };
  }
};

using Moves = std::vector<std::string>;

}  // namespace

TEST(Residency, ASequentialPipelineHoldsOneComponentAndTheLastStaysUntilTheNextRow) {
  Log log;
  Residency r(log.move());
  for (const char* c : {"text_encoder", "vae_encoder", "transformer", "transformer", "vae_decoder"}) {
    const Residency::Lease l = r.lease({c});
    EXPECT_EQ(r.resident(), Moves{c});
  }
  EXPECT_EQ(log.moves, (Moves{"+text_encoder", "-text_encoder", "+vae_encoder", "-vae_encoder", "+transformer",
                              "-transformer", "+vae_decoder"}));
  EXPECT_EQ(r.uploads(), 4);
  EXPECT_EQ(r.resident(), Moves{"vae_decoder"});  // kept: nothing else needed the room yet
  const Residency::Lease next = r.lease({"text_encoder"});
  EXPECT_EQ(next.uploads(), 1);
  EXPECT_EQ(log.moves.back(), "+text_encoder");
  EXPECT_EQ(log.moves[log.moves.size() - 2], "-vae_decoder");
}

TEST(Residency, AResidentComponentCostsNoMoveAndALeaseOfTwoHoldsBoth) {
  Log log;
  Residency r(log.move());
  {
    const Residency::Lease a = r.lease({"transformer"});
    const Residency::Lease again = r.lease({"transformer"});  // nested: the tiles of a call, a loop's steps
    EXPECT_EQ(again.uploads(), 0);
  }
  const Residency::Lease both = r.lease({"text_encoder", "upsampler_vision", "text_encoder"});
  EXPECT_EQ(both.uploads(), 2);
  EXPECT_EQ(r.resident(), (Moves{"text_encoder", "upsampler_vision"}));
  EXPECT_EQ(log.moves, (Moves{"+transformer", "-transformer", "+text_encoder", "+upsampler_vision"}));
}

TEST(Residency, AHeldComponentIsNeverEvictedAndLeavesOnceReleased) {
  Log log;
  Residency r(log.move());
  Residency::Lease dit = r.lease({"transformer"});  // one row of a batch denoises
  {
    const Residency::Lease vae = r.lease({"vae_decoder"});  // while another decodes
    EXPECT_EQ(r.resident(), (Moves{"transformer", "vae_decoder"}));
  }
  dit = Residency::Lease();  // released by assignment
  const Residency::Lease te = r.lease({"text_encoder"});
  EXPECT_EQ(r.resident(), Moves{"text_encoder"});
  EXPECT_EQ(log.moves, (Moves{"+transformer", "+vae_decoder", "-transformer", "-vae_decoder", "+text_encoder"}));
}

TEST(Residency, AFailedUploadHoldsNothingAndTheNextLeaseWorks) {
  Log log;
  log.fail = "transformer";
  Residency r(log.move());
  { const Residency::Lease te = r.lease({"text_encoder"}); }
  EXPECT_THROW(r.lease({"vae_encoder", "transformer"}), std::runtime_error);
  // vae_encoder went up before the failure and is held by no one: the next upload evicts it.
  EXPECT_EQ(r.resident(), Moves{"vae_encoder"});
  log.fail.clear();
  const Residency::Lease ok = r.lease({"transformer"});
  EXPECT_EQ(r.resident(), Moves{"transformer"});
  EXPECT_EQ(log.moves, (Moves{"+text_encoder", "-text_encoder", "+vae_encoder", "-vae_encoder", "+transformer"}));
}

TEST(Residency, EagerLeavesTheDeviceWhenTheLastLeaseEnds) {
  Log log;
  Residency r(log.move(), /*eager=*/true);
  {
    const Residency::Lease a = r.lease({"transformer"});
    { const Residency::Lease b = r.lease({"transformer"}); }
    EXPECT_EQ(r.resident(), Moves{"transformer"});  // one holder left
  }
  EXPECT_TRUE(r.resident().empty());
  EXPECT_EQ(log.moves, (Moves{"+transformer", "-transformer"}));
}

TEST(Residency, LeasesFromManyThreadsNeverLoseAComponentInUse) {
  // Each thread checks, while it holds its lease, that its component is resident; the moves run under the
  // Residency's lock, so the log needs none.
  Log log;
  Residency r(log.move());
  std::atomic<int> broken{0};
  std::vector<std::thread> rows;
  for (int t = 0; t < 4; ++t)
    rows.emplace_back([&, t] {
      const std::vector<std::string> order = {"text_encoder", "transformer", "vae_decoder"};
      for (int k = 0; k < 200; ++k) {
        const std::string& c = order[static_cast<std::size_t>(k + t) % order.size()];
        const Residency::Lease l = r.lease({c});
        const auto now = r.resident();
        if (std::find(now.begin(), now.end(), c) == now.end()) ++broken;
      }
    });
  for (auto& t : rows) t.join();
  EXPECT_EQ(broken.load(), 0);
  int up = 0, down = 0;
  for (const auto& m : log.moves) (m[0] == '+' ? up : down)++;
  EXPECT_EQ(up, r.uploads());
  EXPECT_EQ(up - down, static_cast<int>(r.resident().size()));  // every eviction matches an upload
}
