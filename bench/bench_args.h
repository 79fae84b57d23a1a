// Command-line options shared by the benchmarks: --key=value with numeric values, plus
// optional string keys (e.g. --trace=PREFIX), each checked against the benchmark's defaults.
#pragma once

#include <cstdio>
#include <map>
#include <set>
#include <string>

#include "core/error.h"

namespace strata::bench {

struct BenchArgs {
  std::map<std::string, double> num;       // numeric options, defaults filled in
  std::map<std::string, std::string> str;  // string options, defaults filled in
};

/// Parses argv into `defaults` (a copy); an argument that is not --key=value or names no
/// option is an Error starting with "[<bench>]".
inline BenchArgs parse_bench_args(int argc, char** argv, const char* bench, BenchArgs defaults) {
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto eq = s.find('=');
    check(s.rfind("--", 0) == 0 && eq != std::string::npos, "[", bench, "] bad argument '", s,
          "'; use --key=value");
    std::string key = s.substr(2, eq - 2), value = s.substr(eq + 1);
    if (defaults.str.count(key)) {
      defaults.str[key] = value;
      continue;
    }
    check(defaults.num.count(key), "[", bench, "] unknown option --", key);
    defaults.num[key] = std::stod(value);
  }
  return defaults;
}

/// A benchmark's main: runs `run`; a strata::Error (a bad option, a failed check) becomes
/// "error: ..." on stderr and exit code 2.
inline int run_main(int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}

}  // namespace strata::bench
