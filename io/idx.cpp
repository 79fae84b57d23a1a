// IDX reader over zlib's gz* functions, which also read uncompressed files transparently.
#include "io/idx.h"

#include <zlib.h>

#include <filesystem>
#include <memory>

namespace strata::io {
namespace {

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<std::remove_pointer_t<gzFile>, GzCloser>;

void read_exact(gzFile f, void* dst, size_t n, const std::string& path, const char* what) {
  int got = gzread(f, dst, static_cast<unsigned>(n));
  check(got == static_cast<int>(n), "[idx] ", path, " is truncated: expected ", n, " bytes of ",
        what, ", got ", std::max(got, 0), "; re-download or reinstall the data");
}

uint32_t big_endian(const unsigned char* b) {
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
}

}  // namespace

Tensor read_idx(const std::string& path) {
  check(std::filesystem::exists(path), "[idx] file not found: ", path,
        " (Fashion-MNIST: apt-get install dataset-fashion-mnist)");
  GzFile f(gzopen(path.c_str(), "rb"));
  check(f != nullptr, "[idx] cannot open ", path);
  unsigned char magic[4];
  read_exact(f.get(), magic, 4, path, "header");
  check(magic[0] == 0 && magic[1] == 0 && magic[2] == 0x08, "[idx] ", path,
        " is not an IDX file of unsigned bytes (magic ", int(magic[0]), " ", int(magic[1]), " ",
        int(magic[2]), " ", int(magic[3]), ")");
  int ndim = magic[3];
  check(ndim >= 1 && ndim <= 4, "[idx] ", path, " declares ", ndim, " dimensions; expected 1-4");
  Shape shape(ndim);
  for (int d = 0; d < ndim; ++d) {
    unsigned char b[4];
    read_exact(f.get(), b, 4, path, "dimension sizes");
    shape[d] = big_endian(b);
  }
  Tensor t = empty(shape, DType::u8);
  read_exact(f.get(), t.raw_data(), static_cast<size_t>(t.numel()), path, "data");
  return t;
}

}  // namespace strata::io
