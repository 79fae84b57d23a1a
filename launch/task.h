// The seam between the generic training loop and a recipe (model + data + loss).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/nn/module.h"
#include "core/random.h"
#include "io/sampler.h"

namespace strata::launch {

class Task {
 public:
  virtual ~Task() = default;
  virtual nn::Module& model() = 0;
  /// Loss of the next training batch, with the graph built (scalar).
  virtual Tensor train_loss() = 0;
  /// Samples (images) or tokens consumed by one step, for throughput.
  virtual int64_t items_per_step() const = 0;
  /// "img" or "tok".
  virtual const char* item_unit() const = 0;
  /// Steps in one pass over the training data (the step budget when there are no epochs).
  virtual int64_t steps_per_epoch() const = 0;
  /// Called when an epoch's data is exhausted.
  virtual void next_epoch() {}
  /// Evaluation on held-out data: {"loss": x} plus {"accuracy": a} for classifiers.
  virtual nlohmann::json evaluate() = 0;

  // Checkpoint state beyond the model's parameters, buffers and dropout streams (which the
  // trainer finds itself). Names must be stable across runs: they are checkpoint keys.
  /// The task's own random streams (weight init, data order) by name.
  virtual std::vector<std::pair<std::string, Generator*>> generators() { return {}; }
  /// The task's samplers by name.
  virtual std::vector<std::pair<std::string, io::Sampler*>> samplers() { return {}; }
  /// More state as named tensors (the checkpoint's extra/ group), e.g. a MoCo queue.
  virtual std::map<std::string, Tensor> extra_state() const { return {}; }
  /// Restores what extra_state() returned; the default accepts only nothing.
  virtual void load_extra_state(const std::map<std::string, Tensor>& state);
};

}  // namespace strata::launch
