// Mixed precision in the training step. The ranks agree on found_inf because each holds only
// part of the gradients (ZeRO shards, pipeline stages): skipping on some ranks only would
// split the replicas apart.
#include "launch/amp.h"

namespace strata::launch {

void configure_amp(TrainParts& parts, const Json& cfg) {
  std::string amp = get<std::string>(cfg, "train.amp");
  check(amp == "none" || amp == "bf16" || amp == "fp16", "[config] train.amp: unknown value '", amp,
        "'; choose none, bf16 or fp16");
  parts.autocast.reset();
  parts.scaler.reset();
  if (amp == "bf16") parts.autocast = DType::bf16;
  if (amp != "fp16") return;
  parts.autocast = DType::f16;
  optim::LossScalerOptions options;
  options.init_scale = get<double>(cfg, "train.loss_scale.init");
  options.growth_interval = get<int64_t>(cfg, "train.loss_scale.growth_interval");
  parts.scaler.emplace(options);
}

bool unscale_gradients(TrainParts& parts, const std::vector<Tensor>& params) {
  bool local = parts.scaler->unscale_(params);
  Tensor flag = full({1}, local ? 1.0 : 0.0, DType::i64);
  parts.world->all_reduce(flag, dist::ReduceOp::max);
  return flag.item() != 0;
}

void update_loss_scale(TrainParts& parts, bool skipped) {
  parts.scaler->update(skipped);
  if (skipped) ++parts.skipped_steps;
}

}  // namespace strata::launch
