// Module: parameters, buffers and children registered by name. Dotted names
// ("blocks.3.attn.qkv.weight") are the state_dict and checkpoint keys.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace strata::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
/// name -> tensor; ordered so that iteration (and checkpoints) are deterministic.
using StateDict = std::map<std::string, Tensor>;

/// Parameters and buffers are changed in place (load_state_dict, to): every handle to them,
/// in layers and optimizers alike, stays valid.
class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// All parameters in registration order (own before children's), dotted names. A tensor
  /// shared by two modules (tied weights) is listed once, under its first name.
  NamedTensors named_parameters(const std::string& prefix = "") const;
  std::vector<Tensor> parameters() const;
  /// Parameters that require grad (frozen ones are skipped), as optimizers want them.
  std::vector<Tensor> trainable_parameters() const;
  NamedTensors named_buffers(const std::string& prefix = "") const;
  std::vector<std::pair<std::string, Module*>> named_children() const;
  /// Every module in the tree, this one first (named by `prefix`), with dotted names.
  std::vector<std::pair<std::string, Module*>> named_modules(const std::string& prefix = "");

  /// Training mode for this module and all children (dropout, batch norm).
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  /// Freezes (requires_grad=false) or unfreezes every parameter of this subtree.
  void set_frozen(bool frozen);

  /// Parameters and buffers by dotted name (detached views of the live tensors; tied
  /// weights appear under every name, as in torch).
  StateDict state_dict() const;
  /// Copies values in by name (converting dtype). Strict mode checks everything first and
  /// throws one Error listing every missing, unexpected and mis-shaped key, loading
  /// nothing; non-strict loads what matches and returns one message per key it skipped.
  std::vector<std::string> load_state_dict(const StateDict& state, bool strict = true);

  /// Converts floating parameters and buffers to a dtype in place (gradients are dropped).
  void to(DType dtype);
  /// Moves parameters and buffers to a device in place (gradients are dropped).
  void to(Device device);

  /// Sets every parameter's .grad to undefined.
  void zero_grad();

  /// Total number of parameter elements (tied weights counted once).
  int64_t num_parameters() const;

 protected:
  /// Registers a parameter (a floating leaf; requires_grad is set) and returns it.
  Tensor& register_parameter(const std::string& name, Tensor value, bool requires_grad = true);
  /// Registers a buffer (state that is saved but not trained, e.g. running statistics).
  Tensor& register_buffer(const std::string& name, Tensor value);
  /// Registers a child module and returns a typed pointer to it (owned by this module).
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void check_new_name(const std::string& name, const char* what) const;
  /// Every parameter and buffer under every dotted name, tied ones repeated.
  void collect_state(const std::string& prefix, NamedTensors& out) const;
  /// Applies f to each distinct parameter and buffer of the subtree.
  template <class F>
  void for_each_tensor(F f);
  // Deques keep registration order and the references register_* returned.
  std::deque<std::pair<std::string, Tensor>> params_;
  std::deque<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

/// A module with one input and one output, so that Sequential can chain it.
class Layer : public Module {
 public:
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};

}  // namespace strata::nn
