// Another tool reads strata checkpoints: h5py (/usr/bin/python3) opens checkpoints of GPT and
// LeNet-5, finds every parameter and buffer by its dotted name with the recorded shape and
// dtype, and recomputes each dataset's CRC-32 with zlib as docs/checkpoint-format.md says.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "io/checkpoint.h"
#include "models/gpt.h"
#include "models/lenet.h"
#include "tests/support/values.h"

namespace strata::io {
namespace {

namespace fs = std::filesystem;

constexpr const char* kReader = R"PY(
import sys, zlib
import h5py, numpy as np

path, expected_file = sys.argv[1], sys.argv[2]
def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)
with h5py.File(path, "r") as f:
    assert text(f.attrs["format"]) == "strata-checkpoint", f.attrs["format"]
    assert text(f.attrs["version"]) == "2"
    expected = [line.split("\t") for line in open(expected_file).read().splitlines()]
    found = set(f["model"].keys())
    for name, shape, dtype in expected:
        assert name in found, f"h5py does not find model/{name}; it has {sorted(found)}"
        ds = f["model"][name]
        want = tuple(int(x) for x in shape.split(",") if x)
        assert ds.shape == want, f"{name}: shape {ds.shape} != {want}"
        assert text(ds.attrs["dtype"]) == dtype, f"{name}: dtype {ds.attrs['dtype']} != {dtype}"
        crc = format(zlib.crc32(np.ascontiguousarray(ds[()]).tobytes()), "08x")
        assert crc == text(ds.attrs["crc32"]), f"{name}: crc {crc} != {ds.attrs['crc32']}"
    assert len(found) == len(expected), f"{len(found)} datasets, expected {len(expected)}"
    for group in ("optimizer", "rng", "sampler", "schedule"):
        assert group in f, f"missing group {group}"
    print("h5py found", len(expected), "tensors by dotted name in", path)
)PY";

void check_with_h5py(const nn::Module& model, const std::string& name) {
  fs::path dir = strata::testing::fresh_temp_dir("strata_test_h5py_" + name);
  Checkpoint c;
  c.step = 3;
  c.model = model.state_dict();
  c.optimizer["step"] = scalar_tensor(3, DType::i64);
  c.rng["init"] = {1, 2};
  c.samplers["train"] = {0, 64};
  write_checkpoint((dir / "c.h5").string(), c);
  {
    std::ofstream out(dir / "expected.tsv");
    for (const auto& [n, t] : c.model) {
      std::string shape;
      for (int64_t d : t.shape()) shape += std::to_string(d) + ",";
      out << n << '\t' << shape << '\t' << dtype_name(t.dtype()) << '\n';
    }
    std::ofstream(dir / "reader.py") << kReader;
  }
  std::string cmd = "/usr/bin/python3 " + (dir / "reader.py").string() + " " +
                    (dir / "c.h5").string() + " " + (dir / "expected.tsv").string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST(CheckpointH5py, FindsEveryGptParameterByDottedName) {
  models::GPTConfig g;
  g.vocab_size = 65;
  g.block_size = 16;
  g.n_layer = 2;
  g.n_head = 2;
  g.n_embd = 32;
  g.dropout = 0.1;
  Generator gen(0);
  models::GPT gpt(g, gen);
  ASSERT_TRUE(gpt.state_dict().count("h.1.attn.c_attn.weight"))
      << "the GPT's naming changed; update this test";
  check_with_h5py(gpt, "gpt");
}

TEST(CheckpointH5py, FindsEveryLenetParameterByDottedName) {
  Generator gen(0);
  models::LeNet5 lenet(1, 10, gen);
  check_with_h5py(lenet, "lenet");
}

}  // namespace
}  // namespace strata::io
