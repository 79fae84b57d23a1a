// The cuBLASLt algorithms already chosen on a device, by GEMM shape. cublasLtMatmulAlgoGetHeuristic
// costs tens of microseconds of host time per call, which a training step of small GEMMs (or any
// step the GPU finishes faster than the host can launch) would otherwise pay on every GEMM.
#pragma once

#include <cublasLt.h>

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

namespace strata::cuda {

/// Everything the heuristic's answer depends on besides the device and its workspace size:
/// types, transpositions, the three layouts, the epilogue and the operands' alignments.
using GemmKey = std::array<int64_t, 20>;

/// What the heuristic answered for a key: an algorithm, or that there is none.
struct GemmPlan {
  bool found = false;
  cublasLtMatmulAlgo_t algo{};
};

/// One device's plans; safe to use from several threads.
class GemmPlans {
 public:
  std::optional<GemmPlan> find(const GemmKey& key) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = plans_.find(key);
    if (it == plans_.end()) return std::nullopt;
    return it->second;
  }
  void insert(const GemmKey& key, const GemmPlan& plan) {
    std::lock_guard<std::mutex> lock(mutex_);
    plans_.emplace(key, plan);
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return plans_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::map<GemmKey, GemmPlan> plans_;
};

}  // namespace strata::cuda
