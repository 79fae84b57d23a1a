// Optimizer base: parameter groups with their own hyper-parameters, per-parameter state
// named for checkpoints, and step() that matches torch.optim's update rules.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "core/tensor.h"

namespace strata::optim {

struct ParamGroup {
  std::vector<Tensor> params;
  /// Unset: the optimizer's default. Set by the optimizer at construction, so always set after.
  std::optional<double> lr{};
  std::optional<double> weight_decay{};
  /// Optimizer-specific overrides (e.g. "momentum"; booleans as 0/1). Missing keys take the
  /// optimizer's defaults; unknown keys are an Error at construction and at step.
  std::map<std::string, double> options{};
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// Applies one update to every parameter that has a gradient, under NoGradGuard.
  void step();
  virtual std::string name() const = 0;
  /// Drops every parameter's gradient.
  void zero_grad();
  std::vector<ParamGroup>& groups() { return groups_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  /// Learning rate of group 0 (schedulers set every group).
  double lr() const { return *groups_.at(0).lr; }
  /// The value of option `key` in group `group` (after defaults are filled in).
  double option(size_t group, const std::string& key) const;
  /// State tensors keyed "<group>.<index>.<slot>" (e.g. "0.3.exp_avg"), plus "step" (a 0-d
  /// i64 holding step_count()). The tensors are the live state: copy them to snapshot.
  std::map<std::string, Tensor> state_dict() const;
  /// Replaces the state with copies of `state`; keys, slot names and shapes are checked
  /// against the groups and this optimizer's slots.
  void load_state_dict(const std::map<std::string, Tensor>& state);
  int64_t step_count() const { return step_count_; }

 protected:
  /// `defaults` lists every option key this optimizer accepts with its default.
  Optimizer(std::vector<ParamGroup> groups, double lr, double weight_decay,
            std::map<std::string, double> defaults);
  /// Updates one parameter in place from its gradient (same dtype, contiguous).
  virtual void update(size_t group, size_t index, const Tensor& param, const Tensor& grad) = 0;
  /// A parameter of a group that has a gradient, as step() hands them over.
  struct Item {
    size_t index;
    Tensor param, grad;
  };
  /// Updates a group's parameters that have gradients. The default calls update() on each;
  /// optimizers with fused CUDA kernels override it to update many tensors per launch.
  virtual void update_group(size_t group, const std::vector<Item>& items);
  /// For an update_group with fused CUDA kernels: updates the items that are not on a GPU one
  /// by one (update()) and returns the others, for the fused launches.
  std::vector<Item> update_host_items(size_t group, const std::vector<Item>& items);
  /// Checks one group's hyper-parameters; throws naming the group and the value.
  virtual void validate(size_t group) const = 0;
  /// The slot names this optimizer keeps per parameter (for load_state_dict's checks).
  virtual std::vector<std::string> slot_names() const = 0;

  /// The named state slot of a parameter, created on first use as `init` filled like the
  /// parameter (f32 for bf16/f16 parameters). `created` says whether it was just made.
  Tensor& slot(size_t group, size_t index, const std::string& name, double init = 0,
               bool* created = nullptr);
  /// A per-parameter counter slot (0-d f64, as torch's state["step"]); returns it incremented.
  double bump_counter(size_t group, size_t index, const std::string& name);
  static std::string key(size_t group, size_t index, const std::string& name);
  /// Fills option defaults, rejects unknown keys and runs validate() on every group; derived
  /// constructors call it (virtuals do not dispatch from the base constructor).
  void validate_all();

  std::map<std::string, Tensor> state_;
  int64_t step_count_ = 0;

 private:
  void check_group(size_t group);
  std::vector<ParamGroup> groups_;
  std::map<std::string, double> defaults_;
};

/// The CUDA tensors of fused optimizer launches: per batch one list per role (parameter,
/// gradient, state slots...). A batch holds what one launch may mix: one device, one dtype and
/// one value of `extra` (what the hyper-parameters depend on per parameter, such as Adam's
/// step count); the kernels split batches of more tensors than a launch takes.
template <size_t Roles>
class FusedBatches {
 public:
  using Lists = std::array<std::vector<Tensor>, Roles>;
  /// Appends one parameter's tensors, in role order, to its batch.
  void add(double extra, const std::array<Tensor, Roles>& tensors) {
    const Tensor& p = tensors[0];
    Lists& lists = batches_[{p.device().index, static_cast<int>(p.dtype()), extra}];
    for (size_t r = 0; r < Roles; ++r) lists[r].push_back(tensors[r]);
  }
  /// Calls launch(extra, lists) once per batch.
  template <class Launch>
  void launch(Launch&& launch) const {
    for (const auto& [key, lists] : batches_) launch(std::get<2>(key), lists);
  }

 private:
  std::map<std::tuple<int, int, double>, Lists> batches_;
};

/// The parameters of all groups, in order.
std::vector<Tensor> all_params(const Optimizer& opt);

}  // namespace strata::optim
