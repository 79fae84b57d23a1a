// metrics.jsonl: one JSON object per line, appended and flushed as training goes.
#pragma once

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace strata::io {

class MetricsLog {
 public:
  /// Opens `path` for appending (resumed runs continue the same file). An empty path (ranks
  /// other than 0) makes every call a no-op.
  explicit MetricsLog(const std::string& path);
  void write(const nlohmann::json& record);

 private:
  std::ofstream out_;
  bool enabled_ = false;
};

}  // namespace strata::io
