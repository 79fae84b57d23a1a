// Recipes: build the task (model + data + loss), optimizer and schedule from a resolved
// config.
#pragma once

#include "launch/trainer.h"

namespace strata::launch {

/// Everything train() needs, built from `cfg` (see default_config for the keys).
TrainParts build_training(const Json& cfg, const LaunchEnv& env);

}  // namespace strata::launch
