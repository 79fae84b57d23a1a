#!/usr/bin/env bash
# Resume on another layout, 2 ranks -> 1: LeNet-5 trained by `mpirun -np 2` with 32 samples
# per rank for N steps and checkpointed, then resumed by one process with 64 samples for N
# more, against an uninterrupted 2-rank run of 2N steps. The sampler's per-rank cursor is
# converted through the global position (cursor * old world), so the single process takes
# the same samples in the same steps: the first N losses are identical (same layout), the
# last N agree within a relative 1e-4 (only the summation order of the batch differs; SGD,
# as in dp_equivalence.sh, because Adam amplifies rounding in near-zero gradients), and the
# final sampler positions are the same global position.
set -euo pipefail
strata=$1
src=$2
mpirun=$3
n=12
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(--config "$src/configs/lenet5_fashion_mnist.json" --set train.max_steps=$((2 * n))
      --set train.log_every=1 --set threads=1 --set schedule.warmup_steps=4
      --set optim.name=sgd --set optim.lr=0.05 --set checkpoint.every=5 --set checkpoint.keep=2)
mpi=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$mpirun" -np 2 --oversubscribe)

"${mpi[@]}" "$strata" train "${args[@]}" --set train.batch_size=32 --set run_dir="$work/straight" \
  > "$work/straight.log"
"${mpi[@]}" "$strata" train "${args[@]}" --set train.batch_size=32 --set run_dir="$work/split" \
  --set train.stop_at_step=$n > "$work/first.log"
grep -q "stopped after step $n" "$work/first.log"
"$strata" train "${args[@]}" --set train.batch_size=64 --set run_dir="$work/split" \
  --resume auto > "$work/second.log"
grep -q "resume: continuing from $work/split/checkpoints/ckpt-$n.h5 (step $n" "$work/second.log"
grep -q "resume: the checkpoint was written by 2 ranks, this run has 1" "$work/second.log"

/usr/bin/python3 - "$work" "$n" <<'PY'
import json, sys, h5py
work, n = sys.argv[1], int(sys.argv[2])
def losses(run):
    return [(r["step"], r["loss"]) for r in map(json.loads, open(f"{work}/{run}/metrics.jsonl"))
            if "loss" in r]
a, b = losses("straight"), losses("split")
assert [s for s, _ in a] == [s for s, _ in b] == list(range(1, 2 * n + 1)), (a, b)
for (s, la), (_, lb) in zip(a[:n], b[:n]):
    assert la == lb, f"step {s} (2 ranks in both runs): loss {la!r} vs {lb!r}"
worst = max(abs(la - lb) / max(abs(la), 1e-6) for (_, la), (_, lb) in zip(a[n:], b[n:]))
assert worst < 1e-4, f"after the 2 -> 1 resume the losses drift: relative {worst:.2e}"
def sampler(run):
    with h5py.File(f"{work}/{run}/checkpoints/ckpt-{2 * n}.h5", "r") as f:
        return list(f["sampler/train"][()]), json.loads(f.attrs["layout"])["world_size"]
(ea, ca), wa = sampler("straight")
(eb, cb), wb = sampler("split")
assert (wa, wb) == (2, 1) and ea == eb and ca * wa == cb * wb, ((ea, ca, wa), (eb, cb, wb))
print(f"2 -> 1 ranks: first {n} losses identical, last {n} within relative {worst:.2e}; "
      f"global position {ca * wa} of epoch {ea} in both; final {a[-1][1]:.6f} vs {b[-1][1]:.6f}")
PY
