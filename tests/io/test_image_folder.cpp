// JPEG decoding against Pillow (the same libjpeg, so pixels must agree exactly) and the
// image-folder loader's order, labels and error messages, on files the tests write.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "io/image_folder.h"

namespace strata::io {
namespace {
namespace fs = std::filesystem;

// Writes test JPEGs with Pillow, and next to each NAME.jpg the pixels Pillow decodes from it
// as NAME.raw (H, W, 3) RGB bytes.
constexpr const char* kWriter = R"PY(
import sys
from PIL import Image
d = sys.argv[1]
def save(name, img, **kw):
    img.save(f"{d}/{name}.jpg", quality=90, **kw)
    open(f"{d}/{name}.raw", "wb").write(Image.open(f"{d}/{name}.jpg").convert("RGB").tobytes())
def rgb(w, h, k):
    return Image.frombytes("RGB", (w, h), bytes((x * 37 + y * 11 * c + k * c * c) % 256
        for y in range(h) for x in range(w) for c in (1, 2, 3)))
save("rgb", rgb(7, 5, 1))
save("gray", Image.frombytes("L", (9, 6), bytes((x * 29 + y * 13) % 256
    for y in range(6) for x in range(9))))
save("progressive", rgb(33, 17, 2), progressive=True, subsampling=2)
for cls, names in (("b_cat", ("1", "0", "2")), ("a_dog", ("1", "0"))):
    for i, n in enumerate(names):
        rgb(8, 6, i + (10 if cls == "a_dog" else 20)).save(f"{d}/folder/{cls}/{n}.jpg")
open(f"{d}/folder/a_dog/notes.txt", "w").write("not an image")
rgb(9, 6, 3).save(f"{d}/sizes/a/0.jpg")
rgb(8, 6, 3).save(f"{d}/sizes/a/1.jpg")
)PY";

class JpegFiles : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("strata_image_folder_" + std::to_string(::getpid()));
    for (const char* sub : {"folder/a_dog", "folder/b_cat", "sizes/a"}) {
      fs::create_directories(dir_ / sub);
    }
    std::ofstream(dir_ / "writer.py") << kWriter;
    std::string cmd = "/usr/bin/python3 " + (dir_ / "writer.py").string() + " " + dir_.string();
    ASSERT_EQ(std::system(cmd.c_str()), 0)
        << "writing test JPEGs needs /usr/bin/python3 with Pillow (apt-get install python3-pil)";
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::string path(const std::string& name) { return (dir_ / name).string(); }
  static std::vector<uint8_t> read_bytes(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  static void write_bytes(const std::string& p, const std::vector<uint8_t>& bytes) {
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  }
  static std::string error_of(const std::function<void()>& fn) {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  }
  static fs::path dir_;
};
fs::path JpegFiles::dir_;

/// Expects decode(name.jpg) (3, H, W) to equal Pillow's (H, W, 3) pixels of the same file.
void expect_same_as_pillow(const std::string& jpg, const std::string& raw, int64_t h, int64_t w) {
  Tensor t = read_jpeg(jpg);
  ASSERT_EQ(t.shape(), (Shape{3, h, w})) << jpg;
  std::ifstream in(raw, std::ios::binary);
  std::vector<uint8_t> want{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  ASSERT_EQ(static_cast<int64_t>(want.size()), h * w * 3) << raw;
  const uint8_t* got = t.data<uint8_t>();
  int64_t mismatches = 0, distinct = 0;
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t c = 0; c < 3; ++c) {
        uint8_t g = got[(c * h + y) * w + x], p = want[(y * w + x) * 3 + c];
        mismatches += g != p;
        distinct += g != got[0];
      }
    }
  }
  EXPECT_EQ(mismatches, 0) << jpg;
  EXPECT_GT(distinct, h * w) << jpg << " decoded to a nearly flat image";
}

TEST_F(JpegFiles, DecodesLikePillowPixelForPixel) {
  expect_same_as_pillow(path("rgb.jpg"), path("rgb.raw"), 5, 7);
  expect_same_as_pillow(path("progressive.jpg"), path("progressive.raw"), 17, 33);
  // Grayscale files come out as three equal channels.
  expect_same_as_pillow(path("gray.jpg"), path("gray.raw"), 6, 9);
  Tensor g = read_jpeg(path("gray.jpg"));
  EXPECT_EQ(g.slice(0, 0, 1).contiguous().to_vector<uint8_t>(),
            g.slice(0, 2, 3).contiguous().to_vector<uint8_t>());
}

TEST_F(JpegFiles, FolderHasSortedClassesFilesAndLabels) {
  EXPECT_EQ(image_folder_classes(path("folder")), (std::vector<std::string>{"a_dog", "b_cat"}));
  ImageSet set = load_image_folder(path("folder"));
  EXPECT_EQ(set.images.shape(), (Shape{5, 3, 6, 8}));
  EXPECT_EQ(set.num_classes, 2);
  EXPECT_EQ(set.labels.to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 1, 1, 1}));
  // Sample 3 is b_cat/1.jpg (files sorted by name within their class).
  std::vector<uint8_t> want = read_jpeg(path("folder/b_cat/1.jpg")).to_vector<uint8_t>();
  EXPECT_EQ(set.images.slice(0, 3, 4).contiguous().to_vector<uint8_t>(), want);
  EXPECT_NE(set.images.slice(0, 2, 3).contiguous().to_vector<uint8_t>(), want);
}

TEST_F(JpegFiles, BadFoldersAndFilesNameTheProblem) {
  std::string missing = path("no_such_folder");
  EXPECT_EQ(error_of([&] { load_image_folder(missing); }),
            "[data] image folder '" + missing +
                "' not found; set data.path to a folder of <class>/<image>.jpg folders (for "
                "CIFAR-10 extract cifar10-jpeg.tar.gz, see README)");
  EXPECT_EQ(error_of([&] { load_image_folder(path("folder/a_dog")); }),
            "[data] image folder '" + path("folder/a_dog") +
                "' has no class sub-folders; expected <root>/<class>/<image>.jpg");
  fs::create_directories(dir_ / "empty_class/a");
  fs::create_directories(dir_ / "empty_class/b");
  fs::copy_file(dir_ / "rgb.jpg", dir_ / "empty_class/a/0.jpg");
  EXPECT_EQ(error_of([&] { load_image_folder(path("empty_class")); }),
            "[data] class folder '" + path("empty_class/b") +
                "' holds no .jpg/.jpeg images; add images or remove the folder");
  EXPECT_EQ(error_of([&] { load_image_folder(path("sizes")); }),
            "[data] '" + path("sizes/a/1.jpg") + "' is 6x8 but '" + path("sizes/a/0.jpg") +
                "' is 6x9; an image folder must hold images of one size (resize them first)");
}

TEST_F(JpegFiles, CorruptFilesNameTheFile) {
  const std::string suffix = "; the file is corrupt or not a JPEG: replace or remove it";
  write_bytes(path("garbage.jpg"), {'n', 'o', 't', ' ', 'a', ' ', 'j', 'p', 'e', 'g'});
  EXPECT_EQ(error_of([&] { read_jpeg(path("garbage.jpg")); }),
            "[data] cannot decode JPEG '" + path("garbage.jpg") +
                "': Not a JPEG file: starts with 0x6e 0x6f" + suffix);
  write_bytes(path("empty.jpg"), {});
  EXPECT_EQ(error_of([&] { read_jpeg(path("empty.jpg")); }),
            "[data] cannot decode JPEG '" + path("empty.jpg") + "': the file is empty" + suffix);
  // A truncated file: libjpeg only warns (and would fill the rest grey); it fails here.
  std::vector<uint8_t> whole = read_bytes(path("progressive.jpg"));
  whole.resize(whole.size() / 2);
  write_bytes(path("truncated.jpg"), whole);
  std::string msg = error_of([&] { read_jpeg(path("truncated.jpg")); });
  EXPECT_EQ(msg.rfind("[data] cannot decode JPEG '" + path("truncated.jpg") + "': ", 0), 0u) << msg;
  EXPECT_NE(msg.find("Premature end of JPEG file"), std::string::npos) << msg;
  // In a folder, the first bad file in load order is reported.
  fs::create_directories(dir_ / "corrupt/a");
  fs::copy_file(dir_ / "rgb.jpg", dir_ / "corrupt/a/0.jpg");
  fs::copy_file(dir_ / "truncated.jpg", dir_ / "corrupt/a/1.jpg");
  fs::copy_file(dir_ / "garbage.jpg", dir_ / "corrupt/a/2.jpg");
  msg = error_of([&] { load_image_folder(path("corrupt")); });
  EXPECT_EQ(msg.rfind("[data] cannot decode JPEG '" + path("corrupt/a/1.jpg") + "': ", 0), 0u)
      << msg;
}

}  // namespace
}  // namespace strata::io
