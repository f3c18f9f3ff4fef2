// Model-level CPU offload's bookkeeping (include/diffgentor/residency.hpp).
#include "diffgentor/residency.hpp"

#include <algorithm>

namespace dg {

Residency::Lease& Residency::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    release();
    owner_ = other.owner_;
    names_ = std::move(other.names_);
    uploads_ = other.uploads_;
    other.owner_ = nullptr;
    other.names_.clear();
    other.uploads_ = 0;
  }
  return *this;
}

void Residency::Lease::release() {
  if (!owner_) return;
  std::lock_guard<std::mutex> lock(owner_->mu_);
  for (const std::string& n : names_) {
    State& s = owner_->state_[n];
    if (--s.holders > 0 || !owner_->eager_ || !s.resident) continue;  // stays resident until an upload needs room
    try {
      owner_->move_(n, false);
      s.resident = false;
    } catch (...) {  // a destructor does not throw: it stays resident, and the next upload tries again
    }
  }
  owner_ = nullptr;
  names_.clear();
}

Residency::Lease Residency::lease(const std::vector<std::string>& wanted) {
  std::vector<std::string> names;  // each once, so a name given twice is not held twice
  for (const std::string& n : wanted)
    if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  Lease held;
  std::lock_guard<std::mutex> lock(mu_);
  const bool all_resident =
      std::all_of(names.begin(), names.end(), [&](const std::string& n) { return state_[n].resident; });
  if (!all_resident)  // diffusers' hooks offload the previous model as the next one starts: make room first
    for (auto& [name, s] : state_)
      if (s.resident && s.holders == 0 && std::find(names.begin(), names.end(), name) == names.end()) {
        move_(name, false);
        s.resident = false;
      }
  for (const std::string& n : names) {
    State& s = state_[n];
    if (!s.resident) {
      move_(n, true);  // a throw leaves nothing held: the holders are counted once every upload has succeeded
      s.resident = true;
      ++held.uploads_;
      ++uploads_;
    }
  }
  for (const std::string& n : names) ++state_[n].holders;
  held.owner_ = this;
  held.names_ = std::move(names);
  return held;
}

std::vector<std::string> Residency::resident() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [name, s] : state_)
    if (s.resident) out.push_back(name);
  return out;
}

int64_t Residency::uploads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return uploads_;
}

}  // namespace dg
