// The two first recipes' tasks: image classification and character language modelling.
#pragma once

#include <memory>

#include "launch/config.h"
#include "launch/env.h"
#include "launch/task.h"

namespace strata::launch {

/// LeNet-5 on Fashion-MNIST (IDX files from data.path).
std::unique_ptr<Task> make_classify_task(const Json& cfg, const LaunchEnv& env);
/// A character-level GPT on the text at data.path (a file or a folder of files).
std::unique_ptr<Task> make_char_lm_task(const Json& cfg, const LaunchEnv& env);

}  // namespace strata::launch
