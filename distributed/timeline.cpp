// Timeline storage, the Chrome trace writer, and interval-union arithmetic for overlap.
#include "distributed/timeline.h"

#include <algorithm>
#include <fstream>

#include "core/error.h"

namespace strata::dist {
namespace {

using Interval = std::pair<int64_t, int64_t>;

/// Sorted, disjoint union of the spans of one category.
std::vector<Interval> merged(const std::vector<Span>& spans, const std::string& category) {
  std::vector<Interval> v;
  for (const Span& s : spans) {
    if (s.category == category && s.end_us > s.start_us) v.push_back({s.start_us, s.end_us});
  }
  std::sort(v.begin(), v.end());
  std::vector<Interval> out;
  for (const Interval& i : v) {
    if (!out.empty() && i.first <= out.back().second) {
      out.back().second = std::max(out.back().second, i.second);
    } else {
      out.push_back(i);
    }
  }
  return out;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

Timeline::Timeline(int rank) : rank_(rank), origin_(Clock::now()) {}

void Timeline::add(const std::string& name, const std::string& category, Clock::time_point start,
                   Clock::time_point end, int64_t bytes) {
  auto us = [&](Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t - origin_).count();
  };
  std::lock_guard<std::mutex> lock(mu_);
  spans_.push_back({name, category, us(start), us(end), bytes});
}

std::vector<Span> Timeline::spans() const {
  std::lock_guard<std::mutex> lock(mu_);
  return spans_;
}

void Timeline::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  spans_.clear();
}

void Timeline::write_chrome_trace(const std::string& path) const {
  std::ofstream f(path);
  check(f.good(), "[Timeline] cannot open ", path, " for writing; check the directory exists");
  f << "{\"traceEvents\": [\n";
  auto spans = this->spans();
  // One track per category, so overlapping communication and compute stay readable.
  std::vector<std::string> tracks;
  for (size_t i = 0; i < spans.size(); ++i) {
    const Span& s = spans[i];
    auto it = std::find(tracks.begin(), tracks.end(), s.category);
    if (it == tracks.end()) it = tracks.insert(tracks.end(), s.category);
    f << "  {\"name\": \"" << json_escape(s.name) << "\", \"cat\": \"" << json_escape(s.category)
      << "\", \"ph\": \"X\", \"ts\": " << s.start_us << ", \"dur\": " << s.end_us - s.start_us
      << ", \"pid\": " << rank_ << ", \"tid\": " << (it - tracks.begin())
      << ", \"args\": {\"bytes\": " << s.bytes << "}}" << (i + 1 < spans.size() ? ",\n" : "\n");
  }
  f << "], \"displayTimeUnit\": \"ms\"}\n";
  check(f.good(), "[Timeline] writing ", path, " failed (disk full?)");
}

Timeline::Scope::Scope(Timeline* timeline, std::string name, std::string category)
    : timeline_(timeline),
      name_(std::move(name)),
      category_(std::move(category)),
      start_(Clock::now()) {}

Timeline::Scope::~Scope() {
  if (timeline_) timeline_->add(name_, category_, start_, Clock::now());
}

Overlap overlap(const std::vector<Span>& spans, const std::string& comm_category,
                const std::string& compute_category) {
  auto comm = merged(spans, comm_category);
  auto compute = merged(spans, compute_category);
  Overlap o;
  size_t j = 0;
  for (const Interval& c : comm) {
    o.comm_s += (c.second - c.first) * 1e-6;
    while (j < compute.size() && compute[j].second <= c.first) ++j;
    for (size_t k = j; k < compute.size() && compute[k].first < c.second; ++k) {
      int64_t lo = std::max(c.first, compute[k].first), hi = std::min(c.second, compute[k].second);
      if (hi > lo) o.hidden_s += (hi - lo) * 1e-6;
    }
  }
  return o;
}

}  // namespace strata::dist
