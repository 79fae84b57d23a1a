// Recipes: build the task (model + data + loss), optimizer and schedule from a resolved
// config.
#pragma once

#include "launch/trainer.h"

namespace strata::launch {

/// Everything train() needs, built from `cfg` (see default_config for the keys), with the
/// model replicated over `comm` (rank 0's initial state is broadcast).
TrainParts build_training(const Json& cfg, const LaunchEnv& env,
                          std::shared_ptr<dist::Communicator> comm);

}  // namespace strata::launch
