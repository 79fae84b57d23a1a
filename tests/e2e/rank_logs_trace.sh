#!/usr/bin/env bash
# log.per_rank and trace.path under mpirun -np 2: every rank writes <run_dir>/rank<N>.log with
# its own progress lines and <trace.path>.rank<N>.json, a Chrome trace with the data-parallel
# all-reduce ("comm") and forward/backward ("compute") spans; metrics.jsonl stays rank 0's.
set -euo pipefail
strata=$1
src=$2
mpirun=$3
run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$mpirun" -np 2 --oversubscribe \
  "$strata" train --config "$src/configs/lenet5_fashion_mnist.json" --set train.max_steps=6 \
  --set train.log_every=2 --set checkpoint.every=0 --set threads=1 --set train.batch_size=32 \
  --set schedule.warmup_steps=1 --set run_dir="$run/out" --set log.per_rank=true \
  --set trace.path="$run/trace/dp" > "$run/stdout.log"
/usr/bin/python3 - "$run" <<'PY'
import json, os, re, sys
run = sys.argv[1]
for r in (0, 1):
    lines = open(f"{run}/out/rank{r}.log").read().splitlines()
    steps = [int(m.group(1)) for m in (re.match(r"step +(\d+)/6 \| loss [0-9.]+ \(this rank [0-9.]+\)", l) for l in lines) if m]
    assert steps == [2, 4, 6], f"rank {r} log: {lines}"
    assert any(l.startswith("eval  step 6: ") for l in lines), f"rank {r} log has no eval: {lines}"
    trace = json.load(open(f"{run}/trace/dp.rank{r}.json"))
    events = trace["traceEvents"]
    assert all(e["pid"] == r and e["ph"] == "X" and e["dur"] >= 0 for e in events), events[:3]
    comm = [e for e in events if e["cat"] == "comm"]
    compute = [e for e in events if e["cat"] == "compute"]
    assert len(comm) >= 6 and all(e["args"]["bytes"] > 0 for e in comm), f"rank {r}: {comm[:3]}"
    assert sum(e["name"] == "forward+backward" for e in compute) == 6, f"rank {r}: {compute[:3]}"
    print(f"rank {r}: {len(lines)} log lines, {len(comm)} comm and {len(compute)} compute spans")
metrics = [json.loads(l) for l in open(f"{run}/out/metrics.jsonl")]
assert [m["step"] for m in metrics if "loss" in m] == [2, 4, 6], metrics
stdout = open(f"{run}/stdout.log").read()
assert stdout.count("step      2/6") == 1, "only rank 0 prints progress"
assert "trace: wrote" in stdout, stdout
PY
