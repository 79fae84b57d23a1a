// The optimizer base: group defaults and validation, the step loop under NoGradGuard, and
// named per-parameter state for checkpoints.
#include "core/optim/optimizer.h"

#include <algorithm>
#include <charconv>

#include "core/autograd/grad_mode.h"
#include "core/ops/dispatch.h"
#include "core/ops/elementwise.h"

namespace strata::optim {

Optimizer::Optimizer(std::vector<ParamGroup> groups, double lr, double weight_decay,
                     std::map<std::string, double> defaults)
    : groups_(std::move(groups)), defaults_(std::move(defaults)) {
  for (ParamGroup& g : groups_) {
    if (!g.lr) g.lr = lr;
    if (!g.weight_decay) g.weight_decay = weight_decay;
  }
}

void Optimizer::check_group(size_t group) {
  ParamGroup& g = groups_[group];
  for (const auto& [k, v] : g.options) {
    if (defaults_.count(k)) continue;
    std::string known;
    for (const auto& [name, value] : defaults_) known += (known.empty() ? "" : ", ") + name;
    throw Error(str_cat("[", name(), "] unknown option '", k, "' in parameter group ", group,
                        "; known options: ", known.empty() ? "none" : known));
  }
  for (const auto& [k, v] : defaults_) g.options.emplace(k, v);
  check(g.lr && *g.lr >= 0, "[", name(), "] learning rate of group ", group, " must be >= 0, got ",
        g.lr.value_or(-1));
  check(g.weight_decay && *g.weight_decay >= 0, "[", name(), "] weight_decay of group ", group,
        " must be >= 0, got ", g.weight_decay.value_or(-1));
  for (size_t i = 0; i < g.params.size(); ++i) {
    const Tensor& p = g.params[i];
    check(p.defined() && is_floating(p.dtype()), "[", name(), "] parameter ", i, " of group ",
          group, " must be a floating tensor, got ", p.defined() ? p.desc() : "an undefined one");
  }
}

void Optimizer::validate_all() {
  for (size_t g = 0; g < groups_.size(); ++g) {
    check_group(g);
    validate(g);
  }
}

double Optimizer::option(size_t group, const std::string& k) const {
  const auto& opts = groups_.at(group).options;
  auto it = opts.find(k);
  check_internal(it != opts.end(), "option ", k, " missing from group ", group);
  return it->second;
}

void Optimizer::step() {
  NoGradGuard guard;
  validate_all();
  ++step_count_;
  for (size_t g = 0; g < groups_.size(); ++g) {
    std::vector<Item> items;
    for (size_t i = 0; i < groups_[g].params.size(); ++i) {
      const Tensor& p = groups_[g].params[i];
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      check(p.is_contiguous(), "[", name(), "] parameter ", i, " of group ", g, " (", p.desc(),
            ") must be contiguous");
      check(grad.shape() == p.shape() && grad.dtype() == p.dtype(), "[", name(), "] gradient ",
            grad.desc(), " of parameter ", i, " of group ", g, " does not match ", p.desc());
      check(grad.device() == p.device(), "[", name(), "] gradient ", grad.desc(), " of parameter ",
            i, " of group ", g, " is not on the parameter's device");
      items.push_back({i, p, grad.contiguous()});
    }
    update_group(g, items);
  }
}

void Optimizer::update_group(size_t group, const std::vector<Item>& items) {
  for (const Item& item : items) update(group, item.index, item.param, item.grad);
}

std::vector<Optimizer::Item> Optimizer::update_host_items(size_t group,
                                                          const std::vector<Item>& items) {
  std::vector<Item> device;
  for (const Item& item : items) {
    if (item.param.device().is_cuda()) {
      device.push_back(item);
    } else {
      update(group, item.index, item.param, item.grad);
    }
  }
  return device;
}

void Optimizer::zero_grad() {
  for (ParamGroup& g : groups_) {
    for (Tensor& p : g.params) p.zero_grad();
  }
}

std::string Optimizer::key(size_t group, size_t index, const std::string& name) {
  return str_cat(group, ".", index, ".", name);
}

Tensor& Optimizer::slot(size_t group, size_t index, const std::string& name, double init,
                        bool* created) {
  std::string k = key(group, index, name);
  auto it = state_.find(k);
  if (created) *created = it == state_.end();
  if (it != state_.end()) return it->second;
  const Tensor& p = groups_[group].params[index];
  return state_[k] = full(p.shape(), init, compute_dtype(p.dtype()), p.device());
}

double Optimizer::bump_counter(size_t group, size_t index, const std::string& name) {
  std::string k = key(group, index, name);
  auto it = state_.find(k);
  if (it == state_.end()) it = state_.emplace(k, scalar_tensor(0, DType::f64)).first;
  double v = it->second.item() + 1;
  it->second.data<double>()[0] = v;
  return v;
}

std::map<std::string, Tensor> Optimizer::state_dict() const {
  std::map<std::string, Tensor> out = state_;
  out["step"] = scalar_tensor(static_cast<double>(step_count_), DType::i64);
  return out;
}

namespace {

/// Parses "<group>.<index>.<slot>"; false when the key has another form.
bool parse_key(const std::string& k, size_t& group, size_t& index, std::string& slot) {
  size_t a = k.find('.'), b = a == std::string::npos ? a : k.find('.', a + 1);
  if (b == std::string::npos) return false;
  auto num = [&](size_t from, size_t to, size_t& out) {
    auto r = std::from_chars(k.data() + from, k.data() + to, out);
    return r.ec == std::errc() && r.ptr == k.data() + to && to > from;
  };
  slot = k.substr(b + 1);
  return num(0, a, group) && num(a + 1, b, index) && !slot.empty();
}

}  // namespace

void Optimizer::load_state_dict(const std::map<std::string, Tensor>& state) {
  std::map<std::string, Tensor> loaded;
  int64_t steps = 0;
  std::vector<std::string> slots = slot_names();
  for (const auto& [k, t] : state) {
    if (k == "step") {
      steps = static_cast<int64_t>(t.item());
      continue;
    }
    size_t g = 0, i = 0;
    std::string s;
    check(parse_key(k, g, i, s), "[", name(), "] load_state_dict: key '", k,
          "' is not of the form <group>.<index>.<slot>");
    check(g < groups_.size() && i < groups_[g].params.size(), "[", name(),
          "] load_state_dict: key '", k, "' names a parameter this optimizer does not have (",
          groups_.size(), " groups); was the checkpoint made with the same parameter groups?");
    check(std::find(slots.begin(), slots.end(), s) != slots.end(), "[", name(),
          "] load_state_dict: unknown slot '", s, "' in key '", k, "'; was the checkpoint made by ",
          "another optimizer?");
    const Tensor& p = groups_[g].params[i];
    bool counter = s == "step";
    check(counter ? t.numel() == 1 : t.shape() == p.shape(), "[", name(),
          "] load_state_dict: state '", k, "' is ", t.desc(), " but parameter is ", p.desc());
    // Slots live where their parameter does (a checkpoint holds host tensors); counters are
    // host scalars.
    loaded[k] = counter
                    ? scalar_tensor(t.item(), DType::f64)
                    : t.to(compute_dtype(p.dtype())).to(p.device()).contiguous().detach().clone();
  }
  check(state.count("step"), "[", name(), "] load_state_dict: missing the 'step' entry");
  state_ = std::move(loaded);
  step_count_ = steps;
}

std::vector<Tensor> all_params(const Optimizer& opt) {
  std::vector<Tensor> out;
  for (const ParamGroup& g : opt.groups()) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

}  // namespace strata::optim
