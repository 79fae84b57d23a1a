// JPEG decoding behind an RAII libjpeg decompressor whose error manager longjmps back to one
// small C-style function (the standard libjpeg pattern), and the parallel folder loader.
#include "io/image_folder.h"

#include <algorithm>
#include <cctype>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <jpeglib.h>

#include "core/error.h"

namespace strata::io {
namespace fs = std::filesystem;

namespace {

struct JpegErrorManager {
  jpeg_error_mgr pub;  // first member: libjpeg hands callbacks &pub as cinfo->err
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void on_jpeg_error(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

/// Warnings (level -1) mean corrupt data that libjpeg would paper over with grey pixels:
/// they fail the file too. Trace messages (level >= 0) are ignored.
void on_jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0) on_jpeg_error(cinfo);
}

/// Owns a decompressor; destroying it is safe whether or not creation or decoding finished.
class JpegDecompressor {
 public:
  JpegDecompressor() {
    std::memset(&cinfo_, 0, sizeof cinfo_);
    std::memset(&err_, 0, sizeof err_);
  }
  ~JpegDecompressor() { jpeg_destroy_decompress(&cinfo_); }
  JpegDecompressor(const JpegDecompressor&) = delete;
  JpegDecompressor& operator=(const JpegDecompressor&) = delete;

  jpeg_decompress_struct* cinfo() { return &cinfo_; }
  JpegErrorManager* err() { return &err_; }

 private:
  jpeg_decompress_struct cinfo_;
  JpegErrorManager err_;
};

/// Decodes `data` to interleaved RGB (H, W, 3) in `out`. Returns 0, or 1 with err->message
/// set. No object with a destructor lives in this frame, so libjpeg's longjmp skips nothing.
int decode_rgb(jpeg_decompress_struct* cinfo, JpegErrorManager* err, const unsigned char* data,
               unsigned long size, std::vector<uint8_t>* out, int* height, int* width) {
  cinfo->err = jpeg_std_error(&err->pub);
  err->pub.error_exit = on_jpeg_error;
  err->pub.emit_message = on_jpeg_message;
  if (setjmp(err->jump)) return 1;
  jpeg_create_decompress(cinfo);
  jpeg_mem_src(cinfo, data, size);
  jpeg_read_header(cinfo, TRUE);
  cinfo->out_color_space = JCS_RGB;  // grayscale is expanded, CMYK is refused by libjpeg
  jpeg_start_decompress(cinfo);
  *height = static_cast<int>(cinfo->output_height);
  *width = static_cast<int>(cinfo->output_width);
  size_t row_bytes = static_cast<size_t>(*width) * 3;
  out->resize(row_bytes * static_cast<size_t>(*height));
  while (cinfo->output_scanline < cinfo->output_height) {
    JSAMPROW row = out->data() + row_bytes * cinfo->output_scanline;
    jpeg_read_scanlines(cinfo, &row, 1);
  }
  jpeg_finish_decompress(cinfo);
  return 0;
}

struct Decoded {
  std::vector<uint8_t> hwc;  // (H, W, 3)
  int height = 0, width = 0;
  std::string error;  // empty when decoding succeeded
};

/// Reads and decodes one file; failures are returned, not thrown (callers run in parallel).
Decoded decode_file(const std::string& path) {
  Decoded d;
  std::ifstream in(path, std::ios::binary);
  if (!in.good()) {
    d.error = str_cat("[data] cannot read '", path, "'; check that it exists and is readable");
    return d;
  }
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  JpegDecompressor dec;
  if (bytes.empty() || decode_rgb(dec.cinfo(), dec.err(), bytes.data(), bytes.size(), &d.hwc,
                                  &d.height, &d.width) != 0) {
    d.error = str_cat("[data] cannot decode JPEG '", path,
                      "': ", bytes.empty() ? "the file is empty" : dec.err()->message,
                      "; the file is corrupt or not a JPEG: replace or remove it");
  }
  return d;
}

/// (H, W, 3) interleaved -> (3, H, W) planar at dst.
void to_planar(const Decoded& d, uint8_t* dst) {
  int64_t hw = static_cast<int64_t>(d.height) * d.width;
  for (int64_t p = 0; p < hw; ++p) {
    for (int64_t c = 0; c < 3; ++c) dst[c * hw + p] = d.hwc[p * 3 + c];
  }
}

bool is_jpeg_name(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg";
}

/// Every image file of every class folder, in load order, with its label.
std::vector<std::pair<std::string, int64_t>> list_images(const std::string& root,
                                                         const std::vector<std::string>& classes) {
  std::vector<std::pair<std::string, int64_t>> files;
  for (size_t c = 0; c < classes.size(); ++c) {
    fs::path dir = fs::path(root) / classes[c];
    std::vector<std::string> mine;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.is_regular_file() && is_jpeg_name(e.path())) mine.push_back(e.path().string());
    }
    check(!mine.empty(), "[data] class folder '", dir.string(),
          "' holds no .jpg/.jpeg images; add images or remove the folder");
    std::sort(mine.begin(), mine.end());
    for (auto& f : mine) files.emplace_back(std::move(f), static_cast<int64_t>(c));
  }
  return files;
}

}  // namespace

Tensor read_jpeg(const std::string& path) {
  Decoded d = decode_file(path);
  check(d.error.empty(), d.error);
  Tensor t = empty({3, d.height, d.width}, DType::u8);
  to_planar(d, t.data<uint8_t>());
  return t;
}

std::vector<std::string> image_folder_classes(const std::string& root) {
  check(fs::is_directory(root), "[data] image folder '", root,
        "' not found; set data.path to a folder of <class>/<image>.jpg folders (for CIFAR-10 "
        "extract cifar10-jpeg.tar.gz, see README)");
  std::vector<std::string> classes;
  for (const auto& e : fs::directory_iterator(root)) {
    if (e.is_directory()) classes.push_back(e.path().filename().string());
  }
  check(!classes.empty(), "[data] image folder '", root,
        "' has no class sub-folders; expected <root>/<class>/<image>.jpg");
  std::sort(classes.begin(), classes.end());
  return classes;
}

ImageSet load_image_folder(const std::string& root) {
  std::vector<std::string> classes = image_folder_classes(root);
  auto files = list_images(root, classes);
  auto n = static_cast<int64_t>(files.size());
  Decoded first = decode_file(files[0].first);
  check(first.error.empty(), first.error);
  int64_t h = first.height, w = first.width, per = 3 * h * w;
  ImageSet set;
  set.images = empty({n, 3, h, w}, DType::u8);
  set.labels = empty({n}, DType::i64);
  set.num_classes = static_cast<int64_t>(classes.size());
  uint8_t* images = set.images.data<uint8_t>();
  int64_t* labels = set.labels.data<int64_t>();
  std::vector<std::string> errors(static_cast<size_t>(n));
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t i = 0; i < n; ++i) {
    const auto& [path, label] = files[static_cast<size_t>(i)];
    Decoded d = decode_file(path);
    if (d.error.empty() && (d.height != h || d.width != w)) {
      d.error = str_cat("[data] '", path, "' is ", d.height, "x", d.width, " but '", files[0].first,
                        "' is ", h, "x", w,
                        "; an image folder must hold images of one size (resize them first)");
    }
    labels[i] = label;
    if (d.error.empty()) {
      to_planar(d, images + i * per);
    } else {
      errors[static_cast<size_t>(i)] = std::move(d.error);
    }
  }
  // The first failure in file order, so that the message does not depend on the threads.
  for (const auto& e : errors) check(e.empty(), e);
  return set;
}

}  // namespace strata::io
