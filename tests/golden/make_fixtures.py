#!/usr/bin/python3
"""Writes the golden fixtures that tests/golden/*.cpp compare strata against.

Run with Debian's PyTorch and h5py (torch 1.13 here):
    /usr/bin/python3 tests/golden/make_fixtures.py tests/golden/fixtures
Every fixture is small (well under 1 MB) and committed. The C++ side rebuilds the same
problem from the stored inputs, so only torch's results are trusted, not its RNG.
"""
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import GPT, LeNet5  # noqa: E402  (the models live beside this script)

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)


def put(f, name, t):
    arr = t.detach().numpy() if torch.is_tensor(t) else np.asarray(t)
    f.create_dataset(name, data=arr)


# ---------------------------------------------------------------- optimizers
# Problem: loss(p) = sum((A p - b)^2) + 0.1 * sum(p^4), p in R^5, 20 steps.
OPTIM_CASES = {
    "sgd": (torch.optim.SGD, dict(lr=0.01)),
    "sgd_momentum_dampening_wd": (torch.optim.SGD,
                                  dict(lr=0.01, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.01, momentum=0.9, nesterov=True)),
    "adam": (torch.optim.Adam, dict(lr=0.05, betas=(0.9, 0.999), eps=1e-8)),
    "adam_wd_amsgrad": (torch.optim.Adam, dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    "adamw": (torch.optim.AdamW, dict(lr=0.05, weight_decay=0.1)),
    "adagrad": (torch.optim.Adagrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.01,
                                          initial_accumulator_value=0.1, eps=1e-10)),
    "rmsprop": (torch.optim.RMSprop, dict(lr=0.01, alpha=0.99, eps=1e-8)),
    "rmsprop_centered_momentum": (torch.optim.RMSprop,
                                  dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5,
                                       weight_decay=0.01)),
}


def optim_problem():
    g = torch.Generator().manual_seed(1)
    A = torch.randn(7, 5, generator=g)
    b = torch.randn(7, generator=g)
    p0 = torch.randn(5, generator=g)
    return A, b, p0


def write_optim(f):
    A, b, p0 = optim_problem()
    put(f, "A", A)
    put(f, "b", b)
    put(f, "p0", p0)
    for name, (cls, kw) in OPTIM_CASES.items():
        p = p0.clone().requires_grad_(True)
        opt = cls([p], **kw)
        traj = [p.detach().clone()]
        for _ in range(20):
            opt.zero_grad()
            loss = ((A @ p - b) ** 2).sum() + 0.1 * (p ** 4).sum()
            loss.backward()
            opt.step()
            traj.append(p.detach().clone())
        put(f, f"{name}/trajectory", torch.stack(traj))
        for k, v in kw.items():
            f[name].attrs[k] = np.array(v, dtype=np.float64)


# ---------------------------------------------------------------- schedules
def write_schedules(f):
    def run(name, make, steps=30):
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
        sched = make(opt)
        lrs = []
        for _ in range(steps):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        put(f, name, torch.tensor(lrs))

    S = torch.optim.lr_scheduler
    run("step", lambda o: S.StepLR(o, step_size=7, gamma=0.5))
    run("multistep", lambda o: S.MultiStepLR(o, milestones=[5, 12, 20], gamma=0.3))
    run("exponential", lambda o: S.ExponentialLR(o, gamma=0.9))
    run("polynomial", lambda o: S.PolynomialLR(o, total_iters=20, power=2.0))
    run("cosine", lambda o: S.CosineAnnealingLR(o, T_max=30, eta_min=0.001))
    run("warmup_cosine", lambda o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=5),
            S.CosineAnnealingLR(o, T_max=25, eta_min=0.001)], milestones=[5]))
    run("cyclic_triangular", lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=4,
                                                  mode="triangular"))
    run("cyclic_triangular2", lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=4,
                                                   mode="triangular2"))
    run("cyclic_exp_range", lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=4,
                                                 mode="exp_range", gamma=0.95))
    run("onecycle", lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=30, pct_start=0.3,
                                           div_factor=25.0, final_div_factor=1e4,
                                           anneal_strategy="cos", cycle_momentum=False))


# ---------------------------------------------------------------- models
def write_model(f, model, inputs, loss):
    for name, p in model.state_dict().items():
        put(f, f"params/{name}", p)
    for k, v in inputs.items():
        put(f, f"inputs/{k}", v)
    put(f, "loss", loss)
    loss.backward()
    for name, p in model.named_parameters():
        put(f, f"grads/{name}", p.grad)


def write_lenet(f):
    torch.set_default_dtype(torch.float32)
    model = LeNet5()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(8, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (8,), generator=g)
    write_model(f, model, {"x": x, "y": y}, F.cross_entropy(model(x), y))


def write_gpt(f):
    torch.set_default_dtype(torch.float32)
    model = GPT(vocab=65, T=16, layers=2, c=32, h=2)
    for n, p in model.named_parameters():  # GPT-2 style init, so activations are realistic
        if p.dim() >= 2:
            nn.init.normal_(p, 0.0, 0.02)
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, 65, (2, 16), generator=g)
    tgt = torch.randint(0, 65, (2, 16), generator=g)
    write_model(f, model, {"idx": idx, "targets": tgt}, model(idx, tgt))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "fixtures")
    os.makedirs(out, exist_ok=True)
    with h5py.File(os.path.join(out, "optim.h5"), "w") as f:
        write_optim(f)
    with h5py.File(os.path.join(out, "schedules.h5"), "w") as f:
        write_schedules(f)
    with h5py.File(os.path.join(out, "lenet5.h5"), "w") as f:
        write_lenet(f)
    with h5py.File(os.path.join(out, "gpt2block.h5"), "w") as f:
        write_gpt(f)
    print("fixtures written to", out)


if __name__ == "__main__":
    main()
