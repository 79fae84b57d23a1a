// Whether ops record the graph. Per thread, so thread-ranks in tests do not interfere.
#pragma once

namespace strata {

class GradMode {
 public:
  static bool enabled();
  static void set_enabled(bool on);
};

/// Disables graph recording for its lifetime (evaluation, optimizer updates).
class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

/// Re-enables recording inside a no-grad region (used by create_graph backward).
class EnableGradGuard {
 public:
  explicit EnableGradGuard(bool on) : prev_(GradMode::enabled()) { GradMode::set_enabled(on); }
  ~EnableGradGuard() { GradMode::set_enabled(prev_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace strata
