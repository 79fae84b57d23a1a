// The two first recipes' tasks: image classification and character language modelling.
#pragma once

#include <memory>

#include "launch/config.h"
#include "launch/mesh.h"
#include "launch/task.h"

namespace strata::launch {

// Data is sharded over the mesh's data-parallel replicas (every stage of a replica reads the
// same batches).
/// LeNet-5 or a CIFAR ResNet (model.name) on IDX files or an image folder (data.format).
std::unique_ptr<Task> make_classify_task(const Json& cfg, const Mesh& mesh);
/// A character-level GPT on the text at data.path (a file or a folder of files); with
/// pipeline stages, this rank builds only its stage's blocks.
std::unique_ptr<Task> make_char_lm_task(const Json& cfg, const Mesh& mesh);

}  // namespace strata::launch
