#!/usr/bin/env bash
# `device: cuda` through the command (labels e2e and cuda; tools/gpu_check.sh runs it): a
# character GPT (dropout on, gradient clipping, AdamW) trains 20 steps on the CPU and on the GPU
# and every step's loss agrees within 1e-3 relative (f32 sums in another order); the CUDA run
# resumed from its step-10 checkpoint equals the uninterrupted one bit for bit (losses, eval,
# the final checkpoint through `strata ckpt diff`); the CUDA checkpoint resumes on the CPU and
# the CPU checkpoint on the GPU, close to the runs that wrote them; bf16 autocast on the GPU
# stays close to the CPU's, and fp16 with loss scaling resumes bit for bit; ZeRO-1 on the GPU
# matches the plain run; LeNet-5 (the classification task) agrees across devices too and
# resumes on the GPU bit for bit. Without a usable GPU it exits with CTest's skip code 77 and
# says so.
set -euo pipefail
strata=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A corpus of its own (no data set needed on the GPU machine): 2000 varied lines.
awk 'BEGIN { for (i = 1; i <= 2000; i++)
  printf "line %d: the %s fox jumps over %d lazy dogs; %s.\n", i,
    (i % 3 ? "quick" : "slow"), (i * 7919) % 1000, (i % 5 ? "again" : "then rests") }' \
  > "$work/corpus.txt"
cat > "$work/config.json" << EOF
{"task": "char_lm", "seed": 3,
 "model": {"name": "gpt", "n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 32,
           "dropout": 0.1},
 "data": {"path": "$work/corpus.txt", "eval_batches": 2},
 "train": {"max_steps": 20, "batch_size": 8, "log_every": 1, "eval_every": 10,
           "grad_clip": 1.0},
 "checkpoint": {"every": 10, "keep": 5},
 "optim": {"name": "adamw", "lr": 0.003, "weight_decay": 0.1, "betas": [0.9, 0.95]},
 "schedule": {"name": "cosine", "warmup_steps": 4, "min_lr": 0.0003},
 "threads": 2}
EOF
run() { # run NAME ARGS...: trains into $work/NAME (the GPT unless ARGS name a --config)
  local name=$1
  shift
  [[ " $* " == *" --config "* ]] || set -- --config "$work/config.json" "$@"
  "$strata" train --set run_dir="$work/$name" "$@" > "$work/$name.log" 2>&1 && return 0
  local rc=$?
  echo "run $name failed (exit code $rc): $*"
  tail -20 "$work/$name.log"
  return $rc
}

if ! run cuda --set device=cuda > "$work/first.txt"; then
  if grep -q "needs a CUDA GPU, but this process has none" "$work/cuda.log"; then
    echo "needs a CUDA GPU: $(cat "$work/cuda.log")"
    exit 77
  fi
  cat "$work/first.txt"
  exit 1
fi
run cpu --set device=cpu
ck() { echo "$work/$1/checkpoints/ckpt-$2.h5"; }
run cuda_resumed --set device=cuda --resume "$(ck cuda 10)"
run cpu_from_cuda --set device=cpu --resume "$(ck cuda 10)"
run cuda_from_cpu --set device=cuda --resume "$(ck cpu 10)"
grep -q "resume: continuing from $(ck cuda 10) (step 10" "$work/cuda_resumed.log"
"$strata" ckpt diff "$(ck cuda 20)" "$(ck cuda_resumed 20)" | tee "$work/diff.txt"
grep -q "^identical: 0 of" "$work/diff.txt"
# Mixed precision on the GPU: bf16 beside the CPU's bf16; fp16 resumed bit for bit.
run bf16_cuda --set device=cuda --set train.amp=bf16 --set checkpoint.every=0
run bf16_cpu --set device=cpu --set train.amp=bf16 --set checkpoint.every=0
run fp16_cuda --set device=cuda --set train.amp=fp16 --set train.loss_scale.growth_interval=3
run fp16_resumed --set device=cuda --set train.amp=fp16 --set train.loss_scale.growth_interval=3 \
  --resume "$(ck fp16_cuda 10)"
"$strata" ckpt diff "$(ck fp16_cuda 20)" "$(ck fp16_resumed 20)"
# ZeRO-1 on the GPU (one rank: its flat buffers and shard optimizer on the device).
run zero_cuda --set device=cuda --set parallel.zero=true --set checkpoint.every=0

# LeNet-5 on IDX images of its own (10 classes, a bright bar per class plus noise): the
# classification task (cuDNN convolutions, eval accuracy) on both devices, its CUDA checkpoint
# resumed on the CPU, and on the GPU bit for bit (strata picks deterministic cuDNN algorithms).
python3 - "$work/idx" << 'PY'
import os, random, struct, sys
out = sys.argv[1]
os.makedirs(out)
rng = random.Random(5)
for split, n in (("train", 640), ("t10k", 200)):
    labels = [rng.randrange(10) for _ in range(n)]
    pixels = bytearray()
    for k in labels:
        for r in range(28):
            for c in range(28):
                bar = 2 + 2 * k <= r < 4 + 2 * k and 4 <= c < 24
                pixels.append(min(255, (200 if bar else 0) + rng.randrange(56)))
    with open(f"{out}/{split}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, n, 28, 28) + bytes(pixels))
    with open(f"{out}/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">BBBBI", 0, 0, 8, 1, n) + bytes(labels))
PY
cat > "$work/lenet.json" << EOF
{"task": "classify", "seed": 3, "model": {"name": "lenet5"},
 "data": {"format": "idx", "path": "$work/idx"},
 "train": {"max_steps": 20, "batch_size": 32, "eval_batch_size": 100, "log_every": 1,
           "eval_every": 10},
 "checkpoint": {"every": 10, "keep": 5},
 "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
 "threads": 2}
EOF
lenet=(--config "$work/lenet.json")
run lenet_cuda --set device=cuda "${lenet[@]}"
run lenet_cpu --set device=cpu "${lenet[@]}"
run lenet_cpu_from_cuda --set device=cpu "${lenet[@]}" --resume "$(ck lenet_cuda 10)"
run lenet_cuda_resumed --set device=cuda "${lenet[@]}" --resume "$(ck lenet_cuda 10)"
"$strata" ckpt diff "$(ck lenet_cuda 20)" "$(ck lenet_cuda_resumed 20)"

python3 - "$work" << 'PY'
import json, sys
work = sys.argv[1]
def records(run):
    return [json.loads(l) for l in open(f"{work}/{run}/metrics.jsonl")]
def steps(run):
    return {r["step"]: r for r in records(run) if "loss" in r}
def evals(run):
    return {r["step"]: r["eval"]["loss"] for r in records(run) if "eval" in r}
def close(a, b, rtol):
    return abs(a - b) <= rtol * max(abs(a), abs(b))
cpu, cuda = steps("cpu"), steps("cuda")
assert sorted(cpu) == sorted(cuda) == list(range(1, 21)), (sorted(cpu), sorted(cuda))
assert cuda[20]["loss"] < cuda[1]["loss"] - 0.5, f"cuda did not train: {cuda[1]['loss']} -> {cuda[20]['loss']}"
worst = max(abs(cpu[s]["loss"] - cuda[s]["loss"]) / cpu[s]["loss"] for s in cpu)
print(f"cpu vs cuda: 20 steps, worst relative loss difference {worst:.2e}")
for s in cpu:
    assert close(cpu[s]["loss"], cuda[s]["loss"], 1e-3), (s, cpu[s]["loss"], cuda[s]["loss"])
    assert cpu[s]["lr"] == cuda[s]["lr"], (s, cpu[s]["lr"], cuda[s]["lr"])
for s, e in evals("cpu").items():
    assert close(e, evals("cuda")[s], 1e-3), ("eval", s, e, evals("cuda")[s])
# Resumed on the GPU from the GPU's checkpoint: bit for bit.
resumed = steps("cuda_resumed")
assert sorted(resumed) == list(range(11, 21)), sorted(resumed)
for s in resumed:
    assert resumed[s]["loss"] == cuda[s]["loss"], (s, resumed[s]["loss"], cuda[s]["loss"])
assert evals("cuda_resumed") == {20: evals("cuda")[20]}, (evals("cuda_resumed"), evals("cuda"))
# Across devices: close to the run that wrote the checkpoint (and to the other device's).
for run, ref in (("cpu_from_cuda", cuda), ("cuda_from_cpu", cpu)):
    got = steps(run)
    assert sorted(got) == list(range(11, 21)), (run, sorted(got))
    for s in got:
        assert close(got[s]["loss"], ref[s]["loss"], 1e-3), (run, s, got[s]["loss"], ref[s]["loss"])
    print(f"{run}: steps 11-20 within 1e-3 of the run that wrote the checkpoint")
# bf16 autocast: the same mixed-precision recipe on both devices (bf16 rounding of GEMM
# operands, sums in another order): every step within 2% of the CPU's.
b_cpu, b_cuda = steps("bf16_cpu"), steps("bf16_cuda")
worst = max(abs(b_cpu[s]["loss"] - b_cuda[s]["loss"]) / b_cpu[s]["loss"] for s in b_cpu)
print(f"bf16 cpu vs cuda: worst relative loss difference {worst:.2e}")
assert worst < 0.02, worst
assert [b_cuda[s]["loss"] for s in b_cuda] != [cuda[s]["loss"] for s in cuda], "bf16 = f32 bitwise"
f16, f16r = steps("fp16_cuda"), steps("fp16_resumed")
for s in f16r:
    assert (f16r[s]["loss"], f16r[s]["loss_scale"], f16r[s]["skipped"]) == \
        (f16[s]["loss"], f16[s]["loss_scale"], f16[s]["skipped"]), (s, f16r[s], f16[s])
assert f16[20]["loss"] < f16[1]["loss"] - 0.5, f"fp16 did not train: {f16[1]} -> {f16[20]}"
print("cuda: resumed from step 10 equals the uninterrupted run bit for bit (f32 and fp16)")
# ZeRO over one rank updates the same numbers through a flat shard: the plain run's losses.
zero = steps("zero_cuda")
worst = max(abs(zero[s]["loss"] - cuda[s]["loss"]) / cuda[s]["loss"] for s in cuda)
print(f"zero on cuda vs plain: worst relative loss difference {worst:.2e}")
assert worst < 1e-5, worst
# LeNet-5: losses within 1e-3, eval loss within 1e-3 and accuracy within 2 test images.
l_cpu, l_cuda, l_res = steps("lenet_cpu"), steps("lenet_cuda"), steps("lenet_cpu_from_cuda")
assert sorted(l_cpu) == sorted(l_cuda) == list(range(1, 21)) and sorted(l_res) == list(range(11, 21))
worst = max(abs(l_cpu[s]["loss"] - l_cuda[s]["loss"]) / l_cpu[s]["loss"] for s in l_cpu)
print(f"lenet cpu vs cuda: worst relative loss difference {worst:.2e}")
assert worst <= 1e-3, worst
for s in l_res:
    assert close(l_res[s]["loss"], l_cuda[s]["loss"], 1e-3), ("lenet resumed", s, l_res[s], l_cuda[s])
l_again = steps("lenet_cuda_resumed")
assert sorted(l_again) == list(range(11, 21)), sorted(l_again)
for s in l_again:
    assert l_again[s]["loss"] == l_cuda[s]["loss"], ("lenet cuda resumed", s, l_again[s], l_cuda[s])
ev_cpu = [r["eval"] for r in records("lenet_cpu") if "eval" in r]
ev_cuda = [r["eval"] for r in records("lenet_cuda") if "eval" in r]
assert len(ev_cpu) == len(ev_cuda) == 2, (ev_cpu, ev_cuda)
for a, b in zip(ev_cpu, ev_cuda):
    assert close(a["loss"], b["loss"], 1e-3) and abs(a["accuracy"] - b["accuracy"]) <= 0.01, (a, b)
assert ev_cuda[-1]["accuracy"] > 0.5, f"lenet on cuda did not learn the bars: {ev_cuda[-1]}"
print(f"lenet: eval cpu {ev_cpu[-1]} cuda {ev_cuda[-1]}")
PY
