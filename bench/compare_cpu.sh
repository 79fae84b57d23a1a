#!/usr/bin/env bash
# strata against PyTorch (Debian's python3-torch) on this machine, in one run. Prints one
# JSON line per case: {"case", "strata_per_s", "torch_per_s", "ratio"} (steps per second;
# for sgemm_1024 also strata's GFLOP/s against raw OpenBLAS). PyTorch is run with 1 and 2
# threads and its best is kept. Usage: bench/compare_cpu.sh [seconds per case] [case]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-3}
only=${2:-}
tools/install_deps.sh --torch
[ -f build/build.ninja ] || tools/build.sh
cmake --build build -j"$(nproc)" --target strata_cpu_bench >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
OMP_NUM_THREADS=$(nproc) build/bench/strata_cpu_bench "$seconds" "$only" > "$tmp/strata.jsonl"
for t in 1 $(nproc); do
  OMP_NUM_THREADS=$t /usr/bin/python3 bench/torch_bench.py "$seconds" "$t" "$only" >> "$tmp/torch.jsonl"
done
/usr/bin/python3 - "$tmp/strata.jsonl" "$tmp/torch.jsonl" <<'PY'
import json, sys
strata = {r["case"]: r for r in map(json.loads, open(sys.argv[1]))}
torch = {}
for r in map(json.loads, open(sys.argv[2])):
    if r["case"] not in torch or r["per_s"] > torch[r["case"]]["per_s"]:
        torch[r["case"]] = r
for case, s in strata.items():
    t = torch.get(case)
    out = {"case": case, "strata_per_s": round(s["per_s"], 3),
           "torch_per_s": round(t["per_s"], 3) if t else None,
           "ratio": round(s["per_s"] / t["per_s"], 3) if t else None}
    if t:
        out["torch_threads"] = t["threads"]
    if "gflops" in s:
        out.update(strata_gflops=s["gflops"], openblas_gflops=s["openblas_gflops"],
                   ratio_vs_openblas=round(s["per_s"] / s["openblas_per_s"], 3))
    print(json.dumps(out))
PY
