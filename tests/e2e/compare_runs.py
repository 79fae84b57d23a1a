#!/usr/bin/python3
"""Compares two runs of the same job under WORK: "straight" (never stopped) and "split"
(stopped and resumed). Every step's loss and lr, the final eval and every dataset of the final
checkpoints (ckpt-TOTAL.h5, with the part files it links to) must be identical, bit for bit. Usage: compare_runs.py WORK TOTAL"""
import json, sys
import h5py, numpy as np
work, total = sys.argv[1], int(sys.argv[2])
def records(run):
    return [json.loads(l) for l in open(f"{work}/{run}/metrics.jsonl")]
def steps(run):
    return [(r["step"], r["loss"], r["lr"]) for r in records(run) if "loss" in r]
a, b = steps("straight"), steps("split")
assert [s for s, _, _ in a] == list(range(1, total + 1)), a
assert [s for s, _, _ in b] == list(range(1, total + 1)), f"split run steps {[s for s, _, _ in b]}"
for (s, la, ra), (_, lb, rb) in zip(a, b):
    assert la == lb and ra == rb, f"step {s}: loss {la!r} vs {lb!r}, lr {ra!r} vs {rb!r}"
# fp16 runs (train.amp): every step's loss scale and count of skipped steps too.
def amp(run):
    return [(r["step"], r.get("loss_scale"), r.get("skipped")) for r in records(run) if "loss" in r]
assert amp("straight") == amp("split"), [x for x in zip(amp("straight"), amp("split")) if x[0] != x[1]]
ea = [r["eval"] for r in records("straight") if "eval" in r][-1]
eb = [r["eval"] for r in records("split") if "eval" in r][-1]
assert ea == eb, f"final eval {ea} vs {eb}"
def datasets(run):
    out = {}
    def visit(group, prefix):
        group.visititems(lambda n, o: out.__setitem__(prefix + n, o[()])
                         if isinstance(o, h5py.Dataset) else None)
    with h5py.File(f"{work}/{run}/checkpoints/ckpt-{total}.h5", "r") as f:
        visit(f, "")
        # Part files of other ranks (ZeRO shards), through the main file's external links.
        for rank in f["parts"].keys() if "parts" in f else []:
            visit(f["parts"][rank], f"parts/{rank}/")
    return out
da, db = datasets("straight"), datasets("split")
assert da.keys() == db.keys(), set(da) ^ set(db)
for k in da:
    assert da[k].dtype == db[k].dtype and np.array_equal(da[k], db[k]), f"dataset {k} differs"
    assert da[k].tobytes() == db[k].tobytes(), f"dataset {k} differs in its bits"
n_model = sum(k.startswith("model/") for k in da)
print(f"{total} steps: losses and lrs identical; {len(da)} datasets ({n_model} model) bitwise "
      f"identical; final eval {ea}")
