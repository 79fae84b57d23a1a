#!/usr/bin/env python3
"""PyTorch side of strata_gpu_bench (tools/gpu_check.sh runs both on the same GPU): eager
GPT-2 small (124M) AdamW training steps, ResNet-50 SGD training steps and
F.scaled_dot_product_attention with the same shapes, one JSON line per case with the same keys.

  python3 bench/torch_gpu_bench.py [--case all|gemm|attention|gpt2|resnet50 or a comma list]
                                   [--batch 16] [--seq 1024] [--layers 12] [--steps 5]
                                   [--warmup 2] [--amp 0|1] [--gemm_n 8192]
                                   [--image_batch 128] [--image_size 224]

--amp 0 matches strata's f32 path (FP32 GEMMs and convolutions: TF32 off); --amp 1 uses bf16
autocast."""
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

CASES = ("gemm", "attention", "gpt2", "resnet50")
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
    # GPT-2's initialisation, as strata's: N(0, 0.02) weights, zero biases, so that loss_after
    # is comparable (it does not change the timing).
    for m in model.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)):
            torch.nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, torch.nn.Linear) and m.bias is not None:
            torch.nn.init.zeros_(m.bias)
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
    # N without the position embedding, as nanoGPT's get_num_params() (see gpu_bench.cpp)
    flops_per_token = 6 * (n_params - model.wpe.weight.numel()) + 12 * L * C * T
    tokens_per_s = B * T / s
    with torch.no_grad():
        loss_after = model(x, y).item()
    return {"case": "gpt2_124m_train_step",
            "precision": "bf16 autocast" if a.amp else "f32 (TF32 off)",
            "batch": B, "seq": T, "layers": L, "params": n_params, "step_ms": s * 1e3,
            "tokens_per_s": tokens_per_s, "mfu": tokens_per_s * flops_per_token / PEAK_FLOPS,
            "peak_flops": PEAK_FLOPS, "loss_after": loss_after,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30}


class Bottleneck(torch.nn.Module):
    """torchvision's Bottleneck (v1.5: stride on the 3x3 conv), same parameter names."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        nn, out = torch.nn, planes * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or cin != out:
            self.downsample = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNet50(torch.nn.Module):
    """torchvision.models.resnet50() written out, for machines without torchvision."""

    def __init__(self, classes=1000):
        super().__init__()
        nn = torch.nn
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
        cin = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
            layer = []
            for b in range(blocks):
                layer.append(Bottleneck(cin, planes, 2 if i > 0 and b == 0 else 1))
                cin = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        h = self.layer4(self.layer3(self.layer2(self.layer1(h))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


def resnet50(a):
    B, S = a.image_batch, a.image_size
    torch.manual_seed(5)
    try:
        import torchvision
        model, source = torchvision.models.resnet50(), "torchvision"
    except (ImportError, RuntimeError, OSError):  # missing, or built for another torch
        model, source = ResNet50(), "inline (torchvision missing)"
    model = model.cuda().train()  # NCHW (channels_last off), eager
    x = torch.randn(B, 3, S, S, device="cuda")
    y = torch.randint(0, 1000, (B,), device="cuda")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def loss_of():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bool(a.amp)):
            return F.cross_entropy(model(x), y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_of().backward()
        opt.step()
    torch.cuda.reset_peak_memory_stats()
    s = seconds_per_call(step, a.warmup, a.steps)
    with torch.no_grad():
        loss_after = loss_of().item()
    return {"case": "resnet50_train_step",
            "precision": "bf16 autocast" if a.amp else "f32 (TF32 off)", "batch": B,
            "image_size": S, "params": sum(p.numel() for p in model.parameters()),
            "step_ms": s * 1e3, "images_per_s": B / s, "loss_after": loss_after,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30, "model": source,
            "cudnn_benchmark": torch.backends.cudnn.benchmark}


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
    p.add_argument("--case", default="all",
                   help="all, or one or a comma list of " + ", ".join(CASES))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--amp", type=int, default=0, choices=[0, 1])
    p.add_argument("--gemm_n", type=int, default=8192)
    p.add_argument("--image_batch", type=int, default=128)
    p.add_argument("--image_size", type=int, default=224)
    a = p.parse_args()
    cases = CASES if a.case == "all" else a.case.split(",")
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        p.error(f"unknown --case {','.join(unknown)}; use all, or one or a comma list of "
                + ", ".join(CASES))
    if not torch.cuda.is_available():
        sys.exit("torch_gpu_bench: torch.cuda.is_available() is False; needs a CUDA GPU")
    torch.backends.cuda.matmul.allow_tf32 = False  # strata's f32 GEMMs are FP32, not TF32
    torch.backends.cudnn.allow_tf32 = False
    info = {"case": "environment", "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0), "sdpa_backend": "torch default (flash for bf16; f32 has no flash kernel)"}
    print(json.dumps(info), flush=True)
    if "gemm" in cases:
        print(json.dumps(gemm(a)), flush=True)
    if "attention" in cases:
        for dtype in (torch.bfloat16, torch.float32):
            print(json.dumps(attention(a, dtype)), flush=True)
    if "gpt2" in cases:
        print(json.dumps(gpt2(a)), flush=True)
    if "resnet50" in cases:
        print(json.dumps(resnet50(a)), flush=True)


if __name__ == "__main__":
    main()
