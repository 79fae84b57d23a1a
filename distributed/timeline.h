// A per-rank timeline of compute and communication spans, written on request in the Chrome
// trace format (chrome://tracing, ui.perfetto.dev), and the overlap arithmetic over it.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace strata::dist {

struct Span {
  std::string name;
  std::string category;  // "compute", "comm", "wait", ...
  int64_t start_us = 0;  // since the timeline's origin
  int64_t end_us = 0;
  int64_t bytes = 0;  // communication spans: payload size
};

/// Thread-safe; recording is a push under a mutex. `rank` becomes the trace's pid.
class Timeline {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Timeline(int rank);

  void add(const std::string& name, const std::string& category, Clock::time_point start,
           Clock::time_point end, int64_t bytes = 0);
  std::vector<Span> spans() const;
  void clear();
  int rank() const { return rank_; }
  /// Writes {"traceEvents": [...]} with one complete ("X") event per span.
  void write_chrome_trace(const std::string& path) const;

  /// Records [construction, destruction) as a span.
  class Scope {
   public:
    Scope(Timeline* timeline, std::string name, std::string category);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    Timeline* timeline_;
    std::string name_, category_;
    Clock::time_point start_;
  };

 private:
  int rank_;
  Clock::time_point origin_;
  mutable std::mutex mu_;
  std::vector<Span> spans_;
};

struct Overlap {
  double comm_s = 0;    // length of the union of `comm` spans
  double hidden_s = 0;  // ... of which covered by the union of `compute` spans
  double hidden_share() const { return comm_s > 0 ? hidden_s / comm_s : 0; }
};

/// How much of the time with communication in flight was also busy with compute.
Overlap overlap(const std::vector<Span>& spans, const std::string& comm_category,
                const std::string& compute_category);

}  // namespace strata::dist
