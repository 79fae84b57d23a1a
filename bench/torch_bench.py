#!/usr/bin/python3
"""PyTorch side of bench/compare_cpu.sh: the same training steps as strata_cpu_bench,
one JSON line per case. Run with Debian's python3-torch: /usr/bin/python3 torch_bench.py"""
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "golden"))
from torch_models import GPT, LeNet5  # noqa: E402  (shared with the golden fixtures)


def measure(step, warmup, seconds):
    for _ in range(warmup):
        step()
    n, start = 0, time.perf_counter()
    while True:
        step()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 3:
            return n / elapsed


class BasicBlock(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o)
        self.conv2, self.bn2 = nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o)
        self.shortcut = nn.Sequential()
        if s != 1 or i != o:
            self.shortcut = nn.Sequential(nn.Conv2d(i, o, 1, s, bias=False), nn.BatchNorm2d(o))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x))


def resnet20():
    layers = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    i = 16
    for o, s in ((16, 1), (32, 2), (64, 2)):
        for b in range(3):
            layers.append(BasicBlock(i, o, s if b == 0 else 1))
            i = o
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    return nn.Sequential(*layers)


def classifier_case(name, model, shape, seconds):
    x, y = torch.randn(*shape), torch.randint(0, 10, (shape[0],))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return {"case": name, "per_s": measure(step, 2, seconds), "items": shape[0]}


def gpt_case(name, layers, c, T, B, seconds):
    model = GPT(65, T, layers, c, 4 if c == 128 else c // 64)
    x, y = torch.randint(0, 65, (B, T)), torch.randint(0, 65, (B, T))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        model(x, y).backward()
        opt.step()
    return {"case": name, "per_s": measure(step, 2, seconds), "items": B * T}


def sgemm_case(seconds):
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    return {"case": "sgemm_1024", "per_s": measure(lambda: a @ b, 2, seconds)}


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    only = sys.argv[3] if len(sys.argv) > 3 else ""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cases = {
        "lenet5_b256": lambda: classifier_case("lenet5_b256", LeNet5(), (256, 1, 28, 28), seconds),
        "gpt_4l_128d_t64_b12": lambda: gpt_case("gpt_4l_128d_t64_b12", 4, 128, 64, 12, seconds),
        "gpt_6l_384d_t256_b8": lambda: gpt_case("gpt_6l_384d_t256_b8", 6, 384, 256, 8, seconds),
        "resnet20_b128": lambda: classifier_case("resnet20_b128", resnet20(), (128, 3, 32, 32),
                                                 seconds),
        "sgemm_1024": lambda: sgemm_case(seconds),
    }
    for name, run in cases.items():
        if not only or only == name:
            r = run()
            r["threads"] = threads
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
