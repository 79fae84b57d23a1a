// Finds, by reading core's sources, every op name an autograd node can carry: the first
// argument of each record()/record_fused() call, and the op name tables of core/ops.
#pragma once

#include <set>
#include <string>
#include <vector>

namespace strata::testing {

struct OpNameScan {
  std::set<std::string> names;
  /// "file:line: record(<arg>, ...)" for each call whose name could not be worked out.
  std::vector<std::string> unresolved;
};

/// Scans one file's text. A record call's first argument may be a string literal; a call
/// to a function of the same file (the literals in its body, e.g. unary_name's table); a
/// local `const char* v = ...;` (the literals of its initialiser); or a `const char*`
/// parameter, resolved through every call of the enclosing function in the file.
/// With `name_tables`, the literals of every `kNames[]` table are names too.
void scan_source(const std::string& file, const std::string& text, bool name_tables,
                 OpNameScan& out);

/// Scans core/**/*.{cpp,cu} under `source_dir`; name tables are read in core/ops/*.cpp.
OpNameScan scan_core(const std::string& source_dir);

/// The union of the op names in every *.txt report under `dir` (one name per line).
std::set<std::string> read_coverage_reports(const std::string& dir, int* files = nullptr);

}  // namespace strata::testing
