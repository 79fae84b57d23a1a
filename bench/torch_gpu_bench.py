#!/usr/bin/env python3
"""PyTorch side of strata_gpu_bench (tools/gpu_check.sh runs both on the same GPU): eager
GPT-2 small (124M) AdamW training steps and F.scaled_dot_product_attention with the same
shapes, one JSON line per case with the same keys.

  python3 bench/torch_gpu_bench.py [--case all|gemm|attention|gpt2] [--batch 16] [--seq 1024]
                                   [--layers 12] [--steps 5] [--warmup 2] [--amp 0|1]
                                   [--gemm_n 8192]

--amp 0 matches strata's f32 path (FP32 GEMMs: TF32 off); --amp 1 uses bf16 autocast."""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "golden"))
from torch_models import GPT  # noqa: E402  (shared with the golden fixtures)

PEAK_FLOPS = 989e12  # H100 SXM dense bf16 tensor-core peak, as in gpu_bench.cpp


def seconds_per_call(step, warmup, n):
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n


def gpt2(a):
    B, T, L, C, V = a.batch, a.seq, a.layers, 768, 50304
    torch.manual_seed(2)
    model = GPT(V, T, L, C, 12).cuda()
    x = torch.randint(0, V, (B, T), device="cuda")
    y = torch.randint(0, V, (B, T), device="cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(a.amp)):
            loss = model(x, y)
        loss.backward()
        opt.step()
    torch.cuda.reset_peak_memory_stats()
    s = seconds_per_call(step, a.warmup, a.steps)
    n_params = sum(p.numel() for p in model.parameters())
    flops_per_token = 6 * n_params + 12 * L * C * T
    tokens_per_s = B * T / s
    with torch.no_grad():
        loss_after = model(x, y).item()
    return {"case": "gpt2_124m_train_step",
            "precision": "bf16 autocast" if a.amp else "f32 (TF32 off)",
            "batch": B, "seq": T, "layers": L, "params": n_params, "step_ms": s * 1e3,
            "tokens_per_s": tokens_per_s, "mfu": tokens_per_s * flops_per_token / PEAK_FLOPS,
            "peak_flops": PEAK_FLOPS, "loss_after": loss_after,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30}


def gemm(a):
    n = a.gemm_n
    torch.manual_seed(4)
    x, y = torch.randn(n, n, device="cuda"), torch.randn(n, n, device="cuda")
    xb, yb = x.bfloat16(), y.bfloat16()
    flops = 2.0 * n ** 3
    bf16 = seconds_per_call(lambda: xb @ yb, a.warmup, 10)
    f32 = seconds_per_call(lambda: x @ y, a.warmup, 10)
    torch.backends.cuda.matmul.allow_tf32 = True
    tf32 = seconds_per_call(lambda: x @ y, a.warmup, 10)
    torch.backends.cuda.matmul.allow_tf32 = False
    return {"case": f"gemm_{n}", "bf16_tflops": flops / bf16 / 1e12,
            "tf32_tflops": flops / tf32 / 1e12, "f32_tflops": flops / f32 / 1e12,
            "peaks_tflops": {"bf16": 989, "tf32": 494, "f32": 67}}


def attention(a, dtype):
    B, H, T, D = a.batch, 12, a.seq, 64
    torch.manual_seed(3)
    q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=dtype, requires_grad=True)
               for _ in range(3))
    g = torch.randn(B, H, T, D, device="cuda", dtype=dtype)

    def fwd():
        with torch.no_grad():
            F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def fwd_bwd():
        for t in (q, k, v):
            t.grad = None
        (F.scaled_dot_product_attention(q, k, v, is_causal=True) * g).sum().backward()
    t_fwd = seconds_per_call(fwd, a.warmup, 10)
    t_fwd_bwd = seconds_per_call(fwd_bwd, a.warmup, 10)
    flops_fwd = 4.0 * B * H * T * T * D / 2
    name = {torch.bfloat16: "bf16", torch.float32: "f32"}[dtype]
    return {"case": f"attention_causal_{name}", "shape": [B, H, T, D], "fwd_ms": t_fwd * 1e3,
            "fwd_bwd_ms": t_fwd_bwd * 1e3, "fwd_tflops": flops_fwd / t_fwd / 1e12,
            "fwd_bwd_tflops": 3.5 * flops_fwd / t_fwd_bwd / 1e12,
            "note": "fwd_bwd includes the loss sum(y * g) and its backward"}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", default="all", choices=["all", "gemm", "attention", "gpt2"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--amp", type=int, default=0, choices=[0, 1])
    p.add_argument("--gemm_n", type=int, default=8192)
    a = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("torch_gpu_bench: torch.cuda.is_available() is False; needs a CUDA GPU")
    torch.backends.cuda.matmul.allow_tf32 = False  # strata's f32 GEMMs are FP32, not TF32
    torch.backends.cudnn.allow_tf32 = False
    info = {"case": "environment", "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0), "sdpa_backend": "torch default (flash)"}
    print(json.dumps(info), flush=True)
    if a.case in ("all", "gemm"):
        print(json.dumps(gemm(a)), flush=True)
    if a.case in ("all", "attention"):
        for dtype in (torch.bfloat16, torch.float32):
            print(json.dumps(attention(a, dtype)), flush=True)
    if a.case in ("all", "gpt2"):
        print(json.dumps(gpt2(a)), flush=True)


if __name__ == "__main__":
    main()
