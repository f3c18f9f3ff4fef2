#pragma once
/// Model-level CPU offload's bookkeeping (--enable_cpu_offload; diffusers' enable_model_cpu_offload): which
/// components are on the run device and which are in use. Torch-free: the moves themselves are a callback
/// (src/engine/offload.cpp moves a TorchScript module's weights).
///
/// The rule, as diffusers' offload hooks apply it: a component is uploaded when something is about to run it, and
/// uploading first evicts every resident component that nothing is running, so a pipeline that runs its
/// components one after another holds one of them on the device at a time; the last one stays until another is
/// needed (the next row's text encoder evicts the VAE decoder). A component some lease holds is never evicted: the
/// rows of a batch that run different components at once hold each of them.
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace dg {

class Residency {
 public:
  /// Moves component `name` onto the run device (`to_device`) or off it. A throw (out of device memory) leaves the
  /// component where it was and reaches the caller of lease().
  using Move = std::function<void(const std::string& name, bool to_device)>;

  /// `eager`: a component leaves the device as soon as its last lease ends, not when another needs the room; the
  /// engine tests run with it so that an invocation outside any lease finds its component gone, always.
  explicit Residency(Move move, bool eager = false) : move_(std::move(move)), eager_(eager) {}
  Residency(const Residency&) = delete;
  Residency& operator=(const Residency&) = delete;

  /// Holds its components on the device until it is destroyed. Move-only.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept { *this = std::move(other); }
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { release(); }
    /// How many of its components this lease had to upload (0: all were resident already).
    int uploads() const { return uploads_; }

   private:
    friend class Residency;
    void release();
    Residency* owner_ = nullptr;
    std::vector<std::string> names_;
    int uploads_ = 0;
  };

  /// Makes every one of `names` resident (uploading those that are not, after evicting every resident component
  /// no lease holds) and holds them until the lease ends. Safe to call from several threads; the moves run one at
  /// a time. On a failed upload nothing is held and the exception propagates.
  Lease lease(const std::vector<std::string>& names);

  /// The components on the device now, by name.
  std::vector<std::string> resident() const;
  /// Uploads since construction.
  int64_t uploads() const;

 private:
  struct State {
    bool resident = false;
    int holders = 0;
  };
  Move move_;
  bool eager_;
  mutable std::mutex mu_;
  std::map<std::string, State> state_;
  int64_t uploads_ = 0;
};

}  // namespace dg
