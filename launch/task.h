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

  // Pipeline parallelism (parallel.pp > 1), for tasks whose model is a stack of blocks.
  // model() is then this stage's share of the model.
  virtual bool supports_pipeline() const { return false; }
  /// Draws the next step's batch; every stage of a replica draws the same one.
  virtual void begin_pipeline_step();
  /// Virtual stage `vs` on micro-batch `microbatch` of that batch: the first takes no input,
  /// each passes on its activation, the last returns the micro-batch's mean loss (0-d).
  virtual Tensor pipeline_stage(int64_t vs, const Tensor& input, int64_t microbatch);
  /// The random streams virtual stage `vs` draws from (its dropout layers), so that
  /// activation recomputation can replay them.
  virtual std::vector<Generator*> pipeline_stage_generators(int64_t /*vs*/) { return {}; }
  /// Parameters that the first and the last stage both hold (a tied input embedding and
  /// output head), by name: the first stage owns them, the last keeps an equal copy.
  virtual std::vector<std::string> tied_weights() const { return {}; }
};

}  // namespace strata::launch
