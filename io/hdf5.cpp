// HDF5 wrappers. Every C call goes through h5_check, which names the call and HDF5's own
// innermost error message; HDF5's automatic printing of its error stack is turned off.
#include "io/hdf5.h"

#include <cstring>
#include <mutex>

namespace strata::io {
namespace {

struct ErrorWalk {
  std::string outer, inner;
};

herr_t collect_error(unsigned n, const H5E_error2_t* err, void* data) {
  auto* walk = static_cast<ErrorWalk*>(data);
  if (!err || !err->desc) return 0;
  if (n == 0) walk->outer = err->desc;
  walk->inner = err->desc;  // walking downward, the last one is where HDF5 found the problem
  return 0;
}

/// The API-level message plus the innermost cause ("unable to open file (truncated file:
/// eof = ...)"); the cause is what tells a damaged file from a missing one.
std::string h5_error_text() {
  ErrorWalk walk;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error, &walk);
  if (walk.outer.empty()) return "unknown HDF5 error";
  return walk.inner == walk.outer ? walk.outer : walk.outer + " (" + walk.inner + ")";
}

void silence_hdf5() {
  // Errors are reported as exceptions instead of HDF5 printing to stderr.
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

template <class T>
T h5_check(T result, const char* call, const std::string& where) {
  if (result < 0) {
    std::string detail = h5_error_text();
    H5Eclear2(H5E_DEFAULT);
    throw Error(str_cat("[hdf5] ", call, " failed for ", where, ": ", detail));
  }
  return result;
}

#define STRATA_H5(call, where) h5_check((call), #call, (where))

hid_t native_type(DType t) {
  switch (t) {
    case DType::f32:
      return H5T_NATIVE_FLOAT;
    case DType::f64:
      return H5T_NATIVE_DOUBLE;
    case DType::bf16:
    case DType::f16:
      return H5T_NATIVE_UINT16;
    case DType::i32:
      return H5T_NATIVE_INT32;
    case DType::i64:
      return H5T_NATIVE_INT64;
    case DType::u8:
    case DType::b8:
      return H5T_NATIVE_UINT8;
  }
  return H5T_NATIVE_FLOAT;
}

/// The dtype of a dataset written by another tool (no strata dtype attribute).
DType dtype_of_h5_type(hid_t type, const std::string& where) {
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT) return size == 8 ? DType::f64 : DType::f32;
  if (cls == H5T_INTEGER) {
    if (size == 8) return DType::i64;
    if (size == 4) return DType::i32;
    if (size == 1) return DType::u8;
  }
  throw Error(str_cat("[hdf5] dataset ", where,
                      " has an element type strata cannot read "
                      "(class ",
                      static_cast<int>(cls), ", ", size, " bytes)"));
}

void write_string_attr(hid_t obj, const std::string& key, const std::string& value,
                       const std::string& where) {
  if (H5Aexists(obj, key.c_str()) > 0) STRATA_H5(H5Adelete(obj, key.c_str()), where);
  H5Handle type(STRATA_H5(H5Tcopy(H5T_C_S1), where), H5Tclose);
  STRATA_H5(H5Tset_size(type.get(), std::max<size_t>(value.size(), 1)), where);
  H5Handle space(STRATA_H5(H5Screate(H5S_SCALAR), where), H5Sclose);
  H5Handle attr(
      STRATA_H5(H5Acreate2(obj, key.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                where),
      H5Aclose);
  STRATA_H5(H5Awrite(attr.get(), type.get(), value.c_str()), where);
}

std::string read_string_attr(hid_t obj, const std::string& key, const std::string& where) {
  H5Handle attr(STRATA_H5(H5Aopen(obj, key.c_str(), H5P_DEFAULT), where + " attribute " + key),
                H5Aclose);
  H5Handle type(STRATA_H5(H5Aget_type(attr.get()), where), H5Tclose);
  check(H5Tget_class(type.get()) == H5T_STRING, "[hdf5] attribute ", key, " of ", where,
        " is not a string");
  H5Handle mem(STRATA_H5(H5Tcopy(H5T_C_S1), where), H5Tclose);
  if (H5Tis_variable_str(type.get()) > 0) {  // h5py writes Python str attributes this way
    STRATA_H5(H5Tset_size(mem.get(), H5T_VARIABLE), where);
    char* text = nullptr;
    STRATA_H5(H5Aread(attr.get(), mem.get(), &text), where);
    std::string value = text ? text : "";
    H5free_memory(text);
    return value;
  }
  // One byte more than stored: a null-padded string of n characters (numpy's bytes) keeps
  // all n when converted to the null-terminated memory type.
  size_t size = H5Tget_size(type.get()) + 1;
  std::string value(size, '\0');
  STRATA_H5(H5Tset_size(mem.get(), size), where);
  STRATA_H5(H5Aread(attr.get(), mem.get(), value.data()), where);
  value.resize(std::strlen(value.c_str()));
  return value;
}

/// Creates the groups leading to `name` ("a/b/w" -> a, a/b).
void ensure_parents(hid_t file, const std::string& name, const std::string& where) {
  for (size_t pos = name.find('/'); pos != std::string::npos; pos = name.find('/', pos + 1)) {
    std::string group = name.substr(0, pos);
    if (group.empty()) continue;
    if (H5Lexists(file, group.c_str(), H5P_DEFAULT) > 0) continue;
    H5Handle g(
        STRATA_H5(H5Gcreate2(file, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), where),
        H5Gclose);
  }
}

struct ListState {
  std::vector<std::string>* names;
  std::string prefix;
};

// Link iteration plus H5Iget_type works the same on HDF5 1.10 (GPU image) and 1.12+.
herr_t list_visitor(hid_t group, const char* name, const H5L_info_t*, void* data) {
  auto* st = static_cast<ListState*>(data);
  hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
  if (obj < 0) return -1;
  if (H5Iget_type(obj) == H5I_DATASET) st->names->push_back(st->prefix + name);
  H5Oclose(obj);
  return 0;
}

}  // namespace

H5Handle& H5Handle::operator=(H5Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    closer_ = o.closer_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void H5Handle::reset() {
  if (id_ >= 0 && closer_) closer_(id_);
  id_ = H5I_INVALID_HID;
}

H5File::H5File(const std::string& path, Mode mode, bool checksummed_metadata) : path_(path) {
  silence_hdf5();
  hid_t id = -1;
  if (mode == Mode::create) {
    H5Handle fapl(STRATA_H5(H5Pcreate(H5P_FILE_ACCESS), path), H5Pclose);
    if (checksummed_metadata) {
      // v2 superblock and object headers (checksummed); V110 keeps HDF5 1.10 able to read it.
      STRATA_H5(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V110), path);
    }
    id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
  } else {
    id = H5Fopen(path.c_str(), mode == Mode::read ? H5F_ACC_RDONLY : H5F_ACC_RDWR, H5P_DEFAULT);
  }
  if (id < 0) {
    std::string detail = h5_error_text();
    H5Eclear2(H5E_DEFAULT);
    throw Error(str_cat("[hdf5] cannot ", mode == Mode::create ? "create" : "open", " '", path,
                        "': ", detail, "; check that the path exists and is an HDF5 file"));
  }
  file_ = H5Handle(id, H5Fclose);
}

void H5File::write_tensor(const std::string& name, const Tensor& t) {
  std::string where = path_ + ":" + name;
  Tensor h = t.detach().to(Device::cpu()).contiguous();
  ensure_parents(file_.get(), name, where);
  if (H5Lexists(file_.get(), name.c_str(), H5P_DEFAULT) > 0) {
    STRATA_H5(H5Ldelete(file_.get(), name.c_str(), H5P_DEFAULT), where);
  }
  std::vector<hsize_t> dims(h.shape().begin(), h.shape().end());
  H5Handle space(STRATA_H5(h.dim() == 0 ? H5Screate(H5S_SCALAR)
                                        : H5Screate_simple(h.dim(), dims.data(), nullptr),
                           where),
                 H5Sclose);
  hid_t type = native_type(h.dtype());
  H5Handle ds(STRATA_H5(H5Dcreate2(file_.get(), name.c_str(), type, space.get(), H5P_DEFAULT,
                                   H5P_DEFAULT, H5P_DEFAULT),
                        where),
              H5Dclose);
  if (h.numel() > 0) {
    STRATA_H5(H5Dwrite(ds.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, h.raw_data()), where);
  }
  write_string_attr(ds.get(), "dtype", std::string(dtype_name(h.dtype())), where);
  write_string_attr(ds.get(), "shape", shape_str(h.shape()), where);
}

Tensor H5File::read_tensor(const std::string& name) const {
  std::string where = path_ + ":" + name;
  check(has(name), "[hdf5] no dataset '", name, "' in ", path_);
  H5Handle ds(STRATA_H5(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), where), H5Dclose);
  H5Handle space(STRATA_H5(H5Dget_space(ds.get()), where), H5Sclose);
  int nd = STRATA_H5(H5Sget_simple_extent_ndims(space.get()), where);
  std::vector<hsize_t> dims(nd);
  if (nd > 0) STRATA_H5(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), where);
  H5Handle ftype(STRATA_H5(H5Dget_type(ds.get()), where), H5Tclose);
  DType dtype = H5Aexists(ds.get(), "dtype") > 0
                    ? parse_dtype(read_string_attr(ds.get(), "dtype", where))
                    : dtype_of_h5_type(ftype.get(), where);
  Tensor t = empty(Shape(dims.begin(), dims.end()), dtype);
  if (t.numel() > 0) {
    STRATA_H5(H5Dread(ds.get(), native_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw_data()),
              where);
  }
  return t;
}

bool H5File::has(const std::string& name) const {
  // H5Lexists requires every parent to exist, so walk the path.
  for (size_t pos = name.find('/'); pos != std::string::npos; pos = name.find('/', pos + 1)) {
    if (pos > 0 && H5Lexists(file_.get(), name.substr(0, pos).c_str(), H5P_DEFAULT) <= 0) {
      return false;
    }
  }
  return H5Lexists(file_.get(), name.c_str(), H5P_DEFAULT) > 0;
}

std::vector<std::string> H5File::list(const std::string& group) const {
  std::vector<std::string> names;
  ListState st{&names, group == "/" ? "" : group + "/"};
  H5Handle g(STRATA_H5(H5Gopen2(file_.get(), group.c_str(), H5P_DEFAULT), path_ + ":" + group),
             H5Gclose);
  STRATA_H5(H5Lvisit(g.get(), H5_INDEX_NAME, H5_ITER_INC, list_visitor, &st), path_);
  return names;
}

void H5File::write_attribute(const std::string& key, const std::string& value) {
  write_string_attr(file_.get(), key, value, path_);
}

std::string H5File::read_attribute(const std::string& key) const {
  return read_string_attr(file_.get(), key, path_);
}

bool H5File::has_attribute(const std::string& key) const {
  return H5Aexists(file_.get(), key.c_str()) > 0;
}

void H5File::write_dataset_attribute(const std::string& name, const std::string& key,
                                     const std::string& value) {
  std::string where = path_ + ":" + name;
  H5Handle ds(STRATA_H5(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), where), H5Dclose);
  write_string_attr(ds.get(), key, value, where);
}

std::string H5File::read_dataset_attribute(const std::string& name, const std::string& key) const {
  std::string where = path_ + ":" + name;
  H5Handle ds(STRATA_H5(H5Dopen2(file_.get(), name.c_str(), H5P_DEFAULT), where), H5Dclose);
  return read_string_attr(ds.get(), key, where);
}

void H5File::link_external(const std::string& name, const std::string& target,
                           const std::string& object) {
  std::string where = path_ + ":" + name;
  ensure_parents(file_.get(), name, where);
  STRATA_H5(H5Lcreate_external(target.c_str(), object.c_str(), file_.get(), name.c_str(),
                               H5P_DEFAULT, H5P_DEFAULT),
            where);
}

void H5File::flush() { STRATA_H5(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), path_); }

void H5File::close() { file_.reset(); }

}  // namespace strata::io
