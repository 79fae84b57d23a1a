// Mixed precision in the training step (train.amp): the autocast dtype of forward and loss,
// and for fp16 the loss scaler whose inf/NaN verdict every rank agrees on.
#pragma once

#include <vector>

#include "launch/trainer.h"

namespace strata::launch {

/// Sets parts.autocast and parts.scaler from train.amp and train.loss_scale.
void configure_amp(TrainParts& parts, const Json& cfg);

/// fp16: divides the averaged gradients held by `params` (this rank's shards under ZeRO, its
/// stage's parameters in a pipeline) by the loss scale; true when any gradient on ANY rank
/// holds inf or NaN (an all-reduce max over parts.world), then every rank skips the step.
bool unscale_gradients(TrainParts& parts, const std::vector<Tensor>& params);

/// After the step: updates the scale (backs off on `skipped`) and counts skipped steps.
void update_loss_scale(TrainParts& parts, bool skipped);

}  // namespace strata::launch
