// JSON Lines writer.
#include "io/metrics.h"

#include "core/error.h"

namespace strata::io {

MetricsLog::MetricsLog(const std::string& path) {
  if (path.empty()) return;
  out_.open(path, std::ios::app);
  check(out_.good(), "[metrics] cannot open ", path, " for writing; check run_dir");
  enabled_ = true;
}

void MetricsLog::write(const nlohmann::json& record) {
  if (!enabled_) return;
  out_ << record.dump() << '\n';
  out_.flush();
}

}  // namespace strata::io
