// The per-thread autocast and TF32 states behind AutocastGuard and Tf32Guard.
#include "core/autocast.h"

namespace strata {
namespace {

/// Per thread like GradMode: thread ranks in one process each have their own policy.
std::optional<DType>& current() {
  thread_local std::optional<DType> low;
  return low;
}

bool& tf32_state() {
  thread_local bool allowed = false;
  return allowed;
}

}  // namespace

std::optional<DType> autocast_dtype() { return current(); }

bool tf32_allowed() { return tf32_state(); }

Tf32Guard::Tf32Guard(bool allow) : prev_(tf32_state()) { tf32_state() = allow; }

Tf32Guard::~Tf32Guard() { tf32_state() = prev_; }

AutocastGuard::AutocastGuard(std::optional<DType> low) : prev_(current()) {
  check(!low || *low == DType::bf16 || *low == DType::f16,
        "[autocast] the low dtype must be bf16 or f16, got ", low.value_or(DType::f32));
  current() = low;
}

AutocastGuard::~AutocastGuard() { current() = prev_; }

}  // namespace strata
