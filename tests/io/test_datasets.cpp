// IDX reading on the real Fashion-MNIST package, text corpora, and the sampler's order,
// sharding and resumable cursor.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "io/datasets.h"
#include "io/idx.h"
#include "io/sampler.h"
#include "tests/support/gradcheck.h"

namespace strata::io {
namespace {

const char* kFashion = "/usr/share/datasets/fashion-mnist";

TEST(Idx, ReadsFashionMnistFromTheDebianPackage) {
  ImageSet train = load_mnist_format(kFashion, "train");
  ImageSet test = load_mnist_format(kFashion, "test");
  EXPECT_EQ(train.images.shape(), (Shape{60000, 1, 28, 28}));
  EXPECT_EQ(test.images.shape(), (Shape{10000, 1, 28, 28}));
  EXPECT_EQ(train.num_classes, 10);
  // The first training image is an ankle boot (class 9), the first test image too.
  EXPECT_EQ(train.labels.to_vector<int64_t>()[0], 9);
  EXPECT_EQ(test.labels.to_vector<int64_t>()[0], 9);
  auto [x, y] = image_batch(train, {0, 1}, 0.0, 1.0);
  EXPECT_EQ(x.shape(), (Shape{2, 1, 28, 28}));
  EXPECT_EQ(y.to_vector<int64_t>(), (std::vector<int64_t>{9, 0}));
  std::vector<float> v = x.to_vector<float>();
  EXPECT_GE(*std::min_element(v.begin(), v.end()), 0.0f);
  EXPECT_LE(*std::max_element(v.begin(), v.end()), 1.0f);
}

TEST(Idx, TruncatedAndForeignFilesAreClearErrors) {
  auto dir = std::filesystem::temp_directory_path();
  std::string truncated = (dir / "strata_truncated-idx").string();
  {
    std::ofstream out(truncated, std::ios::binary);
    const unsigned char header[] = {0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2};
    out.write(reinterpret_cast<const char*>(header), sizeof header);
  }
  try {
    read_idx(truncated);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "[idx] " + truncated +
                                         " is truncated: expected 7840 bytes of data, got 2; "
                                         "re-download or reinstall the data");
  }
  std::string foreign = (dir / "strata_foreign-idx").string();
  std::ofstream(foreign) << "hello world";
  EXPECT_THROW(read_idx(foreign), Error);
  try {
    load_mnist_format(dir.string() + "/no-such-folder", "train");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("apt-get install dataset-fashion-mnist"),
              std::string::npos);
  }
  std::filesystem::remove(truncated);
  std::filesystem::remove(foreign);
}

TEST(Text, TinyShakespeareHasItsKnownVocabulary) {
  std::string path = testing::source_dir() + "/../shared/data/tinyshakespeare.txt";
  TextCorpus c = load_text(path);
  EXPECT_EQ(c.text.size(), 1115394u);
  EXPECT_EQ(c.vocab_size(), 65);
  std::vector<int64_t> first = Tensor(c.tokens).slice(0, 0, 9).to_vector<int64_t>();
  EXPECT_EQ(c.decode(first), "First Cit");
  Generator gen(3);
  auto [x, y] = text_batch(c.tokens, 0, c.tokens.numel(), 4, 8, gen);
  // Targets are the inputs shifted by one token.
  EXPECT_EQ(x.slice(1, 1, 8).to_vector<int64_t>(), y.slice(1, 0, 7).to_vector<int64_t>());
}

TEST(Sampler, ShardsPartitionOneGlobalOrderAndResume) {
  Sampler whole(10, 7, true, 0, 1);
  std::vector<int64_t> global = whole.next(10);
  EXPECT_EQ(std::set<int64_t>(global.begin(), global.end()).size(), 10u);
  Sampler r0(10, 7, true, 0, 2), r1(10, 7, true, 1, 2);
  std::vector<int64_t> a = r0.next(5), b = r1.next(5);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(a[i], global[2 * i]);
    EXPECT_EQ(b[i], global[2 * i + 1]);
  }
  // Resume mid-epoch from a saved state.
  Sampler s(10, 7, true);
  s.next(3);
  Sampler::State saved = s.state();
  std::vector<int64_t> rest = s.next(7);
  Sampler t(10, 7, true);
  t.set_state(saved);
  EXPECT_EQ(t.next(7), rest);
  // A new epoch is a different permutation, deterministic in (seed, epoch).
  s.next_epoch();
  Sampler u(10, 7, true);
  u.next_epoch();
  EXPECT_EQ(s.next(10), u.next(10));
  EXPECT_NE(u.state().epoch, 0);
}

}  // namespace
}  // namespace strata::io
