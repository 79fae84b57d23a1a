#!/usr/bin/env bash
# Resume equals never stopping bit for bit under `mpirun -np 2`: every rank's random streams
# (data, dropout) and sampler positions are gathered into the checkpoint and each rank gets
# its own back. 2N steps against N steps, a
# checkpoint and N more in new processes (`--resume auto`); compare_runs.py checks every
# step's loss and lr, the final eval and every dataset of the final checkpoints (rng/rank1/
# included). $4 picks the job: gpt (dropout 0.2), gpt_fp16 (the same in fp16) or lenet.
set -euo pipefail
strata=$1
src=$2
mpirun=$3
job=$4
n=10
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck source=tests/e2e/resume_jobs.sh
source "$(dirname "$0")/resume_jobs.sh"
job_args "$job" "$src"
# One thread per rank in every run: reductions are deterministic for a fixed thread count.
args+=(--set train.max_steps=$((2 * n)) --set train.log_every=1 --set threads=1
       --set checkpoint.every=4 --set checkpoint.keep=2)
mpi=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "$mpirun" -np 2 --oversubscribe)

"${mpi[@]}" "$strata" train "${args[@]}" --set run_dir="$work/straight" > "$work/straight.log"
"${mpi[@]}" "$strata" train "${args[@]}" --set run_dir="$work/split" --set train.stop_at_step=$n \
  > "$work/first.log"
grep -q "stopped after step $n" "$work/first.log"
test -f "$work/split/checkpoints/ckpt-$n.h5"
# Both ranks' streams are in the file, and rank 1's batch stream differs from rank 0's.
/usr/bin/python3 - "$work/split/checkpoints/ckpt-$n.h5" "$job" <<'PY'
import sys, h5py
path, job = sys.argv[1:]
with h5py.File(path, "r") as f:
    names = set()
    f.visit(names.add)
    assert "rng/init" in names and "rng/rank1/init" in names, sorted(names)
    if job in ("gpt", "gpt_fp16"):
        # (Every rank draws the whole global batch from the same stream and takes its rows,
        # so rank 1's data stream may equal rank 0's; it is saved and restored all the same.)
        assert "rng/rank1/data" in names and "rng/rank1/model.h.0.mlp_drop" in names
    else:
        assert list(f["sampler/train"][()]) == list(f["sampler/rank1/train"][()])
PY
"${mpi[@]}" "$strata" train "${args[@]}" --set run_dir="$work/split" --resume auto \
  > "$work/second.log"
grep -q "resume: continuing from $work/split/checkpoints/ckpt-$n.h5 (step $n" "$work/second.log"

/usr/bin/python3 "$src/tests/e2e/compare_runs.py" "$work" $((2 * n))
