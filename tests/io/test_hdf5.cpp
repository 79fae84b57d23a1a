// io/hdf5: tensors of every dtype round-trip by name, attributes, listing, and clear errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/ops.h"
#include "io/hdf5.h"

namespace strata::io {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("strata_test_" + name)).string();
}

TEST(Hdf5, EveryDtypeRoundTripsByDottedName) {
  std::string path = temp_path("roundtrip.h5");
  Tensor f = from_vector<float>({1.5f, -2.0f, 3.25f, 4.0f, 5.0f, 6.0f}, {2, 3});
  {
    H5File file(path, H5File::Mode::create);
    file.write_tensor("model/blocks.0.attn.weight", f);
    for (DType t :
         {DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8, DType::b8}) {
      file.write_tensor(std::string("dtypes/") + std::string(dtype_name(t)), f.to(t));
    }
    file.write_tensor("scalar", scalar_tensor(7.0, DType::f64));
    file.write_attribute("format", "strata-test");
  }
  H5File file(path, H5File::Mode::read);
  Tensor back = file.read_tensor("model/blocks.0.attn.weight");
  EXPECT_EQ(back.dtype(), DType::f32);
  EXPECT_EQ(back.shape(), (Shape{2, 3}));
  EXPECT_EQ(back.to_vector<float>(), f.to_vector<float>());
  for (DType t :
       {DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8, DType::b8}) {
    Tensor r = file.read_tensor(std::string("dtypes/") + std::string(dtype_name(t)));
    EXPECT_EQ(r.dtype(), t);
    EXPECT_EQ(r.to_vector<double>(), f.to(t).to_vector<double>()) << dtype_name(t);
  }
  EXPECT_EQ(file.read_tensor("scalar").item(), 7.0);
  EXPECT_EQ(file.read_attribute("format"), "strata-test");
  EXPECT_TRUE(file.has("dtypes/bf16"));
  EXPECT_FALSE(file.has("dtypes/nothing/deeper"));
  EXPECT_EQ(file.list("/").size(), 9u);
  EXPECT_EQ(file.list("model"), (std::vector<std::string>{"model/blocks.0.attn.weight"}));
  std::filesystem::remove(path);
}

TEST(Hdf5, ErrorsNameTheFileAndDataset) {
  try {
    H5File file(temp_path("does_not_exist.h5"), H5File::Mode::read);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[hdf5] cannot open '"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("does_not_exist.h5"), std::string::npos);
  }
  std::string junk = temp_path("junk.h5");
  std::ofstream(junk) << "this is not HDF5";
  EXPECT_THROW(H5File(junk, H5File::Mode::read), Error);
  std::filesystem::remove(junk);

  std::string path = temp_path("missing_ds.h5");
  H5File file(path, H5File::Mode::create);
  try {
    file.read_tensor("model/fc.weight");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "[hdf5] no dataset 'model/fc.weight' in " + path);
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace strata::io
