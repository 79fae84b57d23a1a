// Fixture paths, HDF5 attributes read with the C API, and all_close with error reports.
#include "tests/golden/golden.h"

#include <hdf5.h>

#include <cmath>

#include "io/hdf5.h"
#include "tests/support/gradcheck.h"

namespace strata::golden {
namespace {

herr_t collect_name(hid_t, const char* name, const H5A_info_t*, void* out) {
  static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

}  // namespace

std::string fixture_path(const std::string& file) {
  return testing::source_dir() + "/tests/golden/fixtures/" + file;
}

std::map<std::string, std::vector<double>> read_attributes(const std::string& path,
                                                           const std::string& group) {
  io::H5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  check(file.get() >= 0, "[golden] cannot open ", path, "; regenerate it with ",
        "tests/golden/make_fixtures.py");
  io::H5Handle g(H5Gopen2(file.get(), group.c_str(), H5P_DEFAULT), H5Gclose);
  check(g.get() >= 0, "[golden] ", path, " has no group ", group);
  std::vector<std::string> names;
  hsize_t idx = 0;
  check(H5Aiterate2(g.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, &names) >= 0,
        "[golden] cannot list the attributes of ", group, " in ", path);
  std::map<std::string, std::vector<double>> out;
  for (const std::string& name : names) {
    io::H5Handle attr(H5Aopen(g.get(), name.c_str(), H5P_DEFAULT), H5Aclose);
    io::H5Handle space(H5Aget_space(attr.get()), H5Sclose);
    hssize_t n = H5Sget_simple_extent_npoints(space.get());
    check(n > 0, "[golden] attribute ", group, "/", name, " in ", path, " is empty");
    std::vector<double> values(static_cast<size_t>(n));
    check(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, values.data()) >= 0, "[golden] attribute ", group,
          "/", name, " in ", path, " is not numeric");
    out[name] = std::move(values);
  }
  return out;
}

::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, double atol,
                                     double rtol) {
  if (actual.shape() != expected.shape()) {
    return ::testing::AssertionFailure()
           << "shape " << actual.desc() << " differs from expected " << expected.desc();
  }
  std::vector<double> a = actual.detach().to(DType::f64).contiguous().to_vector<double>();
  std::vector<double> e = expected.detach().to(DType::f64).contiguous().to_vector<double>();
  double worst = 0;
  size_t worst_at = 0, failing = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    double err = std::abs(a[i] - e[i]);
    if (!(err <= atol + rtol * std::abs(e[i]))) ++failing;         // NaN fails too
    if (!std::isnan(worst) && (std::isnan(err) || err > worst)) {  // the first NaN sticks
      worst = err;
      worst_at = i;
    }
  }
  if (failing == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << failing << " of " << a.size() << " elements exceed atol " << atol << " + rtol " << rtol
         << "; max abs error " << worst << " at flat index " << worst_at << " (got " << a[worst_at]
         << ", expected " << e[worst_at] << ")";
}

}  // namespace strata::golden
