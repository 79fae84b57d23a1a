// The algorithms already chosen on a device, by problem: cuBLASLt GEMMs by shape and layout,
// cuDNN convolution passes by geometry. Asking the libraries' heuristics costs tens of
// microseconds to a millisecond of host time per call, which a training step would otherwise
// pay on every GEMM and convolution, leaving the GPU waiting for the host.
#pragma once

#include <cublasLt.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

namespace strata::cuda {

/// One device's plans by key; safe to use from several threads.
template <class Key, class Plan>
class PlanCache {
 public:
  std::optional<Plan> find(const Key& key) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = plans_.find(key);
    if (it == plans_.end()) return std::nullopt;
    return it->second;
  }
  void insert(const Key& key, const Plan& plan) {
    std::lock_guard<std::mutex> lock(mutex_);
    plans_.emplace(key, plan);
  }
  /// Inserts or replaces (a plan that stopped working).
  void assign(const Key& key, const Plan& plan) {
    std::lock_guard<std::mutex> lock(mutex_);
    plans_.insert_or_assign(key, plan);
  }

 private:
  mutable std::mutex mutex_;
  std::map<Key, Plan> plans_;
};

/// Everything cuBLASLt's answer depends on besides the device: types, transpositions, the
/// three layouts, the epilogue, the operands' alignments and the workspace size.
using GemmKey = std::array<int64_t, 20>;

/// What the heuristic answered for a GEMM: an algorithm, or that there is none.
struct GemmPlan {
  bool found = false;
  cublasLtMatmulAlgo_t algo{};
};
using GemmPlans = PlanCache<GemmKey, GemmPlan>;

/// A convolution pass (forward, data or filter gradient), its dtype and its whole geometry.
using ConvKey = std::array<int64_t, 19>;

/// The cuDNN algorithm that ran for a convolution pass, with the math type it was ranked with
/// and its workspace; found == false when no qualifying algorithm exists for the dtype.
struct ConvPlan {
  bool found = false;
  int algo = 0;
  int math = 0;
  size_t workspace = 0;
};
using ConvPlans = PlanCache<ConvKey, ConvPlan>;

}  // namespace strata::cuda
