// The per-thread autocast state behind AutocastGuard.
#include "core/autocast.h"

namespace strata {
namespace {

/// Per thread like GradMode: thread ranks in one process each have their own policy.
std::optional<DType>& current() {
  thread_local std::optional<DType> low;
  return low;
}

}  // namespace

std::optional<DType> autocast_dtype() { return current(); }

AutocastGuard::AutocastGuard(std::optional<DType> low) : prev_(current()) {
  check(!low || *low == DType::bf16 || *low == DType::f16,
        "[autocast] the low dtype must be bf16 or f16, got ", low.value_or(DType::f32));
  current() = low;
}

AutocastGuard::~AutocastGuard() { current() = prev_; }

}  // namespace strata
