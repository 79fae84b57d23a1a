// Module registry: names, traversal, modes, freezing, state_dict loading and conversions.
#include "core/nn/module.h"

#include <algorithm>
#include <set>

#include "core/autograd/grad_mode.h"
#include "core/ops/elementwise.h"

namespace strata::nn {
namespace {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

/// Points `t`'s impl at `src`'s data, so that every handle to t sees the new values.
void rebind(Tensor& t, const Tensor& src) {
  TensorImpl& impl = t.impl();
  impl.storage = src.storage();
  impl.shape = src.shape();
  impl.strides = src.strides();
  impl.offset = src.offset();
  impl.dtype = src.dtype();
  impl.grad.reset();
}

}  // namespace

void Module::check_new_name(const std::string& name, const char* what) const {
  check(!name.empty() && name.find('.') == std::string::npos, "[Module] ", what, " name '", name,
        "' must be non-empty and contain no '.'");
  auto taken = [&](const auto& list) {
    return std::any_of(list.begin(), list.end(), [&](const auto& e) { return e.first == name; });
  };
  check(!taken(params_) && !taken(buffers_) && !taken(children_), "[Module] cannot register ", what,
        " '", name, "': the name is already used by a parameter, buffer or child");
}

Tensor& Module::register_parameter(const std::string& name, Tensor value, bool requires_grad) {
  check_new_name(name, "parameter");
  check(value.defined(), "[Module] parameter '", name, "' is undefined");
  check(is_floating(value.dtype()), "[Module] parameter '", name, "' must be floating, got ",
        value.desc());
  if (!value.is_leaf()) value = value.detach();
  value.set_requires_grad(requires_grad);
  params_.emplace_back(name, std::move(value));
  return params_.back().second;
}

Tensor& Module::register_buffer(const std::string& name, Tensor value) {
  check_new_name(name, "buffer");
  check(value.defined(), "[Module] buffer '", name, "' is undefined");
  buffers_.emplace_back(name, value.detach());
  return buffers_.back().second;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  check_new_name(name, "module");
  check(child != nullptr, "[Module] child module '", name, "' is null");
  children_.emplace_back(name, std::move(child));
}

NamedTensors Module::named_parameters(const std::string& prefix) const {
  NamedTensors out;
  std::set<const TensorImpl*> seen;
  std::vector<std::pair<std::string, const Module*>> stack{{prefix, this}};
  // Depth-first in registration order: own parameters, then each child's subtree.
  while (!stack.empty()) {
    auto [pre, m] = stack.back();
    stack.pop_back();
    for (const auto& [name, p] : m->params_) {
      if (seen.insert(&p.impl()).second) out.emplace_back(join(pre, name), p);
    }
    for (auto it = m->children_.rbegin(); it != m->children_.rend(); ++it) {
      stack.emplace_back(join(pre, it->first), it->second.get());
    }
  }
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

std::vector<Tensor> Module::trainable_parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, p] : named_parameters()) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

NamedTensors Module::named_buffers(const std::string& prefix) const {
  NamedTensors out;
  for (const auto& [name, b] : buffers_) out.emplace_back(join(prefix, name), b);
  for (const auto& [name, child] : children_) {
    for (auto& entry : child->named_buffers(join(prefix, name))) out.push_back(std::move(entry));
  }
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_children() const {
  std::vector<std::pair<std::string, Module*>> out;
  for (const auto& [name, child] : children_) out.emplace_back(name, child.get());
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules(const std::string& prefix) {
  std::vector<std::pair<std::string, Module*>> out{{prefix, this}};
  for (const auto& [name, child] : children_) {
    for (auto& entry : child->named_modules(join(prefix, name))) out.push_back(entry);
  }
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::set_frozen(bool frozen) {
  for (auto& [name, p] : named_parameters()) p.set_requires_grad(!frozen);
}

void Module::collect_state(const std::string& prefix, NamedTensors& out) const {
  for (const auto& [name, p] : params_) out.emplace_back(join(prefix, name), p);
  for (const auto& [name, b] : buffers_) out.emplace_back(join(prefix, name), b);
  for (const auto& [name, child] : children_) child->collect_state(join(prefix, name), out);
}

StateDict Module::state_dict() const {
  NamedTensors all;
  collect_state("", all);
  StateDict out;
  for (auto& [name, t] : all) out.emplace(name, t.detach());
  return out;
}

std::vector<std::string> Module::load_state_dict(const StateDict& state, bool strict) {
  NamedTensors all;
  collect_state("", all);
  std::map<std::string, Tensor> model(all.begin(), all.end());
  std::vector<std::string> missing, unexpected, mismatched;
  std::vector<std::pair<Tensor, Tensor>> loads;  // (destination, source)
  for (const auto& [name, dst] : model) {
    auto it = state.find(name);
    if (it == state.end() || !it->second.defined()) {
      missing.push_back(str_cat("missing key '", name, "'"));
    } else if (it->second.shape() != dst.shape()) {
      mismatched.push_back(str_cat("shape mismatch for '", name, "': checkpoint ",
                                   shape_str(it->second.shape()), " vs model ",
                                   shape_str(dst.shape())));
    } else {
      loads.emplace_back(dst, it->second);
    }
  }
  for (const auto& [name, t] : state) {
    if (!model.count(name)) unexpected.push_back(str_cat("unexpected key '", name, "'"));
  }
  std::vector<std::string> problems = missing;
  problems.insert(problems.end(), unexpected.begin(), unexpected.end());
  problems.insert(problems.end(), mismatched.begin(), mismatched.end());
  if (strict && !problems.empty()) {
    std::string msg = str_cat("[load_state_dict] ", problems.size(),
                              problems.size() == 1 ? " problem: " : " problems: ");
    for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
    throw Error(msg);
  }
  NoGradGuard no_grad;
  for (auto& [dst, src] : loads) {
    Tensor d = dst;
    copy_(d, src.detach().to(d.device()));
  }
  return problems;
}

template <class F>
void Module::for_each_tensor(F f) {
  std::set<const TensorImpl*> seen;
  for (auto& [path, m] : named_modules()) {
    for (auto* list : {&m->params_, &m->buffers_}) {
      for (auto& [name, t] : *list) {
        if (seen.insert(&t.impl()).second) f(t);
      }
    }
  }
}

void Module::to(DType dtype) {
  check(is_floating(dtype), "[Module::to] target dtype must be floating, got ", dtype);
  NoGradGuard no_grad;
  for_each_tensor([&](Tensor& t) {
    if (is_floating(t.dtype()) && t.dtype() != dtype) rebind(t, t.detach().to(dtype));
  });
}

void Module::to(Device device) {
  NoGradGuard no_grad;
  for_each_tensor([&](Tensor& t) {
    if (t.device() != device) rebind(t, t.detach().to(device));
  });
}

void Module::zero_grad() {
  for (auto& [name, p] : named_parameters()) p.zero_grad();
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (auto& [name, p] : named_parameters()) n += p.numel();
  return n;
}

}  // namespace strata::nn
