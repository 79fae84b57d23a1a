// A thin RAII layer over the HDF5 C API: files, groups and datasets holding named tensors,
// with dtype and shape attributes so h5py and h5dump read them without strata.
#pragma once

#include <hdf5.h>

#include <string>
#include <vector>

#include "core/tensor.h"

namespace strata::io {

/// Owns one HDF5 identifier and closes it with the matching H5?close.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  H5Handle() = default;
  H5Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~H5Handle() { reset(); }
  H5Handle(H5Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = H5I_INVALID_HID; }
  H5Handle& operator=(H5Handle&& o) noexcept;
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  hid_t get() const { return id_; }
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

class H5File {
 public:
  enum class Mode { read, create, append };
  /// Opens or creates `path`; errors name the path and HDF5's own message. With
  /// `checksummed_metadata` (create only) the file uses the HDF5 1.8-1.10 format, whose
  /// superblock and object headers carry checksums, so damaged metadata is detected on read.
  H5File(const std::string& path, Mode mode, bool checksummed_metadata = false);
  const std::string& path() const { return path_; }

  /// Writes t as dataset `name` ("a/b/weight" creates groups a and a/b), with attributes
  /// dtype (strata's name) and shape. bf16/f16 are stored as their 16-bit patterns.
  void write_tensor(const std::string& name, const Tensor& t);
  /// Reads dataset `name` into a CPU tensor of its stored dtype.
  Tensor read_tensor(const std::string& name) const;
  bool has(const std::string& name) const;
  /// Every dataset below `group`, as full names without the leading '/'.
  std::vector<std::string> list(const std::string& group = "/") const;
  /// String attributes on the file's root group.
  void write_attribute(const std::string& key, const std::string& value);
  std::string read_attribute(const std::string& key) const;
  bool has_attribute(const std::string& key) const;
  /// String attributes on dataset `name`.
  void write_dataset_attribute(const std::string& name, const std::string& key,
                               const std::string& value);
  std::string read_dataset_attribute(const std::string& name, const std::string& key) const;
  /// Creates `name` as an external link to object `object` of file `target` (a relative
  /// `target` resolves beside this file when read; h5py follows the link).
  void link_external(const std::string& name, const std::string& target,
                     const std::string& object = "/");
  /// Flushes HDF5's buffers to the OS.
  void flush();
  /// Closes the file now (destructor does it too).
  void close();

 private:
  std::string path_;
  H5Handle file_;
};

}  // namespace strata::io
