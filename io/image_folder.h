// Image-folder datasets (root/<class>/<image>.jpg, the ImageNet and CIFAR-JPEG layout) decoded
// with libjpeg into an in-memory ImageSet.
#pragma once

#include <string>
#include <vector>

#include "io/datasets.h"

namespace strata::io {

/// Decodes one JPEG file to RGB (3, H, W) u8; grayscale files are expanded to three equal
/// channels. Corrupt or truncated data (libjpeg errors and warnings) throws an Error naming
/// the file.
Tensor read_jpeg(const std::string& path);

/// The class names of an image folder: its sub-folders, sorted.
std::vector<std::string> image_folder_classes(const std::string& root);

/// Every *.jpg / *.jpeg of root/<class>/ (classes and files sorted, label = class position)
/// as images (N, 3, H, W) u8 and labels (N) i64, decoded in parallel. All images must have one
/// size; a missing folder, a class without images or a bad file throws an Error.
ImageSet load_image_folder(const std::string& root);

}  // namespace strata::io
