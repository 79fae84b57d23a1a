// Loading and batching of the in-memory datasets.
#include "io/datasets.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/idx.h"

namespace strata::io {
namespace fs = std::filesystem;

namespace {

std::string find_idx(const std::string& dir, const std::string& stem) {
  for (const char* ext : {"", ".gz"}) {
    std::string p = (fs::path(dir) / (stem + ext)).string();
    if (fs::exists(p)) return p;
  }
  throw Error(str_cat("[data] ", stem, "[.gz] not found in '", dir,
                      "'; install Fashion-MNIST with apt-get install dataset-fashion-mnist or "
                      "set data.path to a folder with the IDX files"));
}

}  // namespace

ImageSet load_mnist_format(const std::string& dir, const std::string& split) {
  check(split == "train" || split == "test", "[data] split must be train or test, got '", split,
        "'");
  std::string prefix = split == "train" ? "train" : "t10k";
  Tensor images = read_idx(find_idx(dir, prefix + "-images-idx3-ubyte"));
  Tensor labels = read_idx(find_idx(dir, prefix + "-labels-idx1-ubyte"));
  check(images.dim() == 3, "[data] images file in ", dir, " has shape ", shape_str(images.shape()),
        "; expected (N, H, W)");
  check(labels.dim() == 1 && labels.size(0) == images.size(0), "[data] ", labels.size(0),
        " labels for ", images.size(0), " images in ", dir);
  ImageSet set;
  set.images = images.reshape({images.size(0), 1, images.size(1), images.size(2)});
  set.labels = labels.to(DType::i64);
  auto lv = set.labels.to_vector<int64_t>();
  set.num_classes = lv.empty() ? 0 : *std::max_element(lv.begin(), lv.end()) + 1;
  return set;
}

std::pair<Tensor, Tensor> image_batch(const ImageSet& set, const std::vector<int64_t>& idx,
                                      double mean, double std) {
  int64_t n = static_cast<int64_t>(idx.size());
  int64_t per = set.images.numel() / set.images.size(0);
  Shape shape = set.images.shape();
  shape[0] = n;
  Tensor x = empty(shape, DType::f32);
  Tensor y = empty({n}, DType::i64);
  const uint8_t* src = set.images.data<uint8_t>();
  const int64_t* lab = set.labels.data<int64_t>();
  float* dst = x.data<float>();
  int64_t* yd = y.data<int64_t>();
  auto scale = static_cast<float>(1.0 / (255.0 * std)), shift = static_cast<float>(mean / std);
  for (int64_t i = 0; i < n; ++i) {
    check(idx[i] >= 0 && idx[i] < set.images.size(0), "[data] sample index ", idx[i],
          " out of range for ", set.images.size(0), " samples");
    const uint8_t* s = src + idx[i] * per;
    float* d = dst + i * per;
    for (int64_t j = 0; j < per; ++j) d[j] = static_cast<float>(s[j]) * scale - shift;
    yd[i] = lab[idx[i]];
  }
  return {x, y};
}

std::string TextCorpus::decode(const std::vector<int64_t>& ids) const {
  std::string s;
  for (int64_t id : ids) s += static_cast<char>(vocab.at(static_cast<size_t>(id)));
  return s;
}

TextCorpus load_text(const std::string& path) {
  check(fs::exists(path), "[data] text path not found: ", path,
        " (the default corpus needs apt-get install fortunes)");
  std::vector<fs::path> files;
  if (fs::is_directory(path)) {
    for (const auto& e : fs::directory_iterator(path)) {
      if (e.is_regular_file() && !e.is_symlink() && e.path().extension() != ".dat") {
        files.push_back(e.path());
      }
    }
    std::sort(files.begin(), files.end());
  } else {
    files.push_back(path);
  }
  TextCorpus c;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    check(in.good(), "[data] cannot read ", f.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    c.text += ss.str();
  }
  check(c.text.size() >= 2, "[data] text at ", path, " is empty");
  std::vector<bool> present(256, false);
  for (unsigned char ch : c.text) present[ch] = true;
  std::vector<int64_t> id_of(256, -1);
  for (int b = 0; b < 256; ++b) {
    if (present[b]) {
      id_of[b] = static_cast<int64_t>(c.vocab.size());
      c.vocab.push_back(static_cast<unsigned char>(b));
    }
  }
  c.tokens = empty({static_cast<int64_t>(c.text.size())}, DType::i64);
  int64_t* t = c.tokens.data<int64_t>();
  for (size_t i = 0; i < c.text.size(); ++i) t[i] = id_of[static_cast<unsigned char>(c.text[i])];
  return c;
}

std::pair<Tensor, Tensor> text_batch(const Tensor& tokens, int64_t lo, int64_t hi, int64_t batch,
                                     int64_t block, Generator& gen) {
  check(hi - lo > block + 1, "[data] text split of ", hi - lo,
        " tokens is too short for block_size ", block, "; use a longer text or a smaller block");
  Tensor x = empty({batch, block}, DType::i64), y = empty({batch, block}, DType::i64);
  const int64_t* t = tokens.data<int64_t>();
  int64_t* xd = x.data<int64_t>();
  int64_t* yd = y.data<int64_t>();
  for (int64_t b = 0; b < batch; ++b) {
    int64_t start = lo + gen.randint(hi - lo - block - 1);
    std::copy(t + start, t + start + block, xd + b * block);
    std::copy(t + start + 1, t + start + block + 1, yd + b * block);
  }
  return {x, y};
}

}  // namespace strata::io
