// The reverse pass: count each node's consumers, then run nodes newest-first once all of
// their output gradient has arrived. Leaves accumulate into .grad and fire their hooks.
#include <atomic>
#include <queue>
#include <unordered_map>

#include "core/autocast.h"
#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/ops/elementwise.h"
#include "core/ops/reduce.h"

namespace strata {
namespace {

thread_local bool t_grad_enabled = true;
std::atomic<uint64_t> g_next_sequence{1};  // only orders nodes; carries no training state

std::shared_ptr<Node> edge_of(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  TensorImpl& impl = t.impl();
  if (impl.grad_fn) return impl.grad_fn;
  if (!impl.accumulator) {
    impl.accumulator = std::make_shared<Node>();
    impl.accumulator->name = "AccumulateGrad";
    impl.accumulator->leaf = t.impl_ptr();
    impl.accumulator->accumulator = true;
  }
  return impl.accumulator;
}

template <class Range>
Tensor record_impl(const char* op, Tensor out, const Range& inputs, BackwardFn backward,
                   bool double_backward) {
  bool needed = false;
  if (GradMode::enabled()) {
    for (const Tensor& t : inputs) needed = needed || t.requires_grad();
  }
  if (!needed) return out;
  auto node = std::make_shared<Node>();
  node->name = op;
  node->next.reserve(inputs.size());
  for (const Tensor& t : inputs) node->next.push_back(edge_of(t));
  node->backward = std::move(backward);
  node->sequence = g_next_sequence.fetch_add(1, std::memory_order_relaxed);
  node->double_backward = double_backward;
  out.impl().requires_grad = true;
  out.impl().grad_fn = std::move(node);
  return out;
}

void accumulate_leaf(Node& node, const Tensor& g, bool create_graph) {
  auto leaf = node.leaf.lock();
  if (!leaf) return;
  Tensor owner(leaf);
  if (!leaf->grad) {
    bool exclusive = g.is_contiguous() && g.storage().use_count() == 1 && g.is_leaf();
    Tensor stored = create_graph ? g : (exclusive ? g.detach() : g.detach().clone());
    leaf->grad = stored.impl_ptr();
  } else if (create_graph) {
    leaf->grad = add(Tensor(leaf->grad), g).impl_ptr();
  } else {
    NoGradGuard guard;
    Tensor acc(leaf->grad);
    add_(acc, g);
  }
  for (auto& hook : leaf->grad_ready_hooks) hook(owner);
}

struct NewestFirst {
  // Leaf accumulators (sequence 0) run as soon as they are ready, so grad-ready hooks fire
  // during the pass, where data parallelism starts its all-reduces, not all at its end.
  bool operator()(const Node* a, const Node* b) const {
    if (a->accumulator != b->accumulator) return b->accumulator;
    return a->sequence < b->sequence;
  }
};

/// Counts, for every node reachable from the roots, how many edges point at it.
std::unordered_map<Node*, int> count_dependencies(const std::vector<Node*>& roots) {
  std::unordered_map<Node*, int> deps;
  std::vector<Node*> stack;
  for (Node* r : roots) {
    if (deps.emplace(r, 0).second) stack.push_back(r);
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (auto& next : n->next) {
      if (!next) continue;
      auto [it, inserted] = deps.emplace(next.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(next.get());
    }
  }
  return deps;
}

struct Pass {
  bool retain_graph = false;
  bool create_graph = false;
  // When set (autograd::grad), gradients reaching these nodes are captured and leaves are
  // left untouched.
  const std::unordered_map<Node*, size_t>* capture = nullptr;
  std::vector<Tensor>* captured = nullptr;
};

void execute(Node& node, const Tensor& g, const Pass& pass,
             std::unordered_map<Node*, Tensor>& buffers, std::unordered_map<Node*, int>& deps,
             std::priority_queue<Node*, std::vector<Node*>, NewestFirst>& ready) {
  if (pass.capture) {
    auto it = pass.capture->find(&node);
    if (it != pass.capture->end()) (*pass.captured)[it->second] = g;
    if (node.accumulator) return;
  } else if (node.accumulator) {
    accumulate_leaf(node, g, pass.create_graph);
    return;
  }
  check(static_cast<bool>(node.backward), "[autograd] backward through ", node.name,
        " a second time, after its saved tensors were freed; pass retain_graph=true to the "
        "first backward");
  check(!pass.create_graph || node.double_backward, "[autograd] ", node.name,
        " is a fused op with a hand-written backward kernel and has no double backward; "
        "compute this part with differentiable ops to use create_graph");
  std::vector<Tensor> grads = node.backward(g);
  check_internal(grads.size() == node.next.size(), node.name, " returned ", grads.size(),
                 " gradients for ", node.next.size(), " inputs");
  if (!pass.retain_graph) node.backward = nullptr;
  for (size_t i = 0; i < grads.size(); ++i) {
    Node* next = node.next[i].get();
    if (!next) continue;
    if (grads[i].defined()) {
      Tensor& buf = buffers[next];
      buf = buf.defined() ? add(buf, grads[i]) : grads[i];
    }
    if (--deps[next] == 0) ready.push(next);
  }
}

void run_pass(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots,
              const Pass& pass) {
  std::vector<Node*> root_nodes;
  std::unordered_map<Node*, Tensor> buffers;
  for (size_t i = 0; i < roots.size(); ++i) {
    check(roots[i].requires_grad(), "[backward] output ", i,
          " does not require grad: nothing in its computation requires a gradient");
    Tensor g = i < grad_roots.size() && grad_roots[i].defined() ? grad_roots[i] : Tensor();
    if (!g.defined()) {
      check(roots[i].numel() == 1, "[backward] output ", i, " has shape ",
            shape_str(roots[i].shape()),
            "; gradients can be implied only for scalar outputs, pass grad explicitly");
      g = ones_like(roots[i]);
    }
    check(g.shape() == roots[i].shape(), "[backward] grad of shape ", shape_str(g.shape()),
          " does not match output ", i, " of shape ", shape_str(roots[i].shape()));
    check(g.device() == roots[i].device(), "[backward] grad on ", g.device().str(), " for output ",
          i, " on ", roots[i].device().str(), "; create the seed gradient on the output's device");
    Node* n = edge_of(roots[i]).get();
    Tensor& buf = buffers[n];
    buf = buf.defined() ? add(buf, g) : g;
    root_nodes.push_back(n);
  }
  auto deps = count_dependencies(root_nodes);
  std::priority_queue<Node*, std::vector<Node*>, NewestFirst> ready;
  for (Node* n : root_nodes) {
    if (deps[n] == 0) {
      deps[n] = -1;  // queued once even when it appears twice among the roots
      ready.push(n);
    }
  }
  EnableGradGuard mode(pass.create_graph);
  // Backward formulas run in their forward's dtypes, as torch's do: never re-autocast.
  AutocastGuard no_autocast(std::nullopt);
  while (!ready.empty()) {
    Node* n = ready.top();
    ready.pop();
    Tensor g = std::move(buffers[n]);
    buffers.erase(n);
    if (!g.defined()) {
      // No gradient reached this node (unused branch): still release its consumers.
      for (auto& next : n->next) {
        if (next && --deps[next.get()] == 0) ready.push(next.get());
      }
      continue;
    }
    execute(*n, g, pass, buffers, deps, ready);
  }
}

}  // namespace

bool GradMode::enabled() { return t_grad_enabled; }
void GradMode::set_enabled(bool on) { t_grad_enabled = on; }

Tensor record(const char* op, Tensor out, std::initializer_list<Tensor> inputs,
              BackwardFn backward) {
  return record_impl(op, std::move(out), inputs, std::move(backward), true);
}
Tensor record(const char* op, Tensor out, const std::vector<Tensor>& inputs, BackwardFn backward) {
  return record_impl(op, std::move(out), inputs, std::move(backward), true);
}
Tensor record_fused(const char* op, Tensor out, std::initializer_list<Tensor> inputs,
                    BackwardFn backward) {
  return record_impl(op, std::move(out), inputs, std::move(backward), false);
}

bool any_requires_grad(std::initializer_list<Tensor> inputs) {
  if (!GradMode::enabled()) return false;
  for (const Tensor& t : inputs) {
    if (t.requires_grad()) return true;
  }
  return false;
}

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots,
                  bool retain_graph, bool create_graph) {
  Pass pass;
  pass.retain_graph = retain_graph || create_graph;
  pass.create_graph = create_graph;
  run_pass(roots, grad_roots, pass);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph,
                         bool create_graph, bool allow_unused) {
  std::unordered_map<Node*, size_t> capture;
  for (size_t i = 0; i < inputs.size(); ++i) {
    check(inputs[i].requires_grad(), "[grad] input ", i, " (", inputs[i].desc(),
          ") does not require grad");
    capture[edge_of(inputs[i]).get()] = i;
  }
  std::vector<Tensor> captured(inputs.size());
  Pass pass;
  pass.retain_graph = retain_graph || create_graph;
  pass.create_graph = create_graph;
  pass.capture = &capture;
  pass.captured = &captured;
  run_pass(outputs, grad_outputs, pass);
  for (size_t i = 0; i < inputs.size(); ++i) {
    check(allow_unused || captured[i].defined(), "[grad] input ", i, " (", inputs[i].desc(),
          ") was not used to compute the outputs; pass allow_unused=true if that is expected");
  }
  return captured;
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  int64_t lead = grad.dim() - static_cast<int64_t>(shape.size());
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < grad.dim(); ++i) {
    if (i < lead || (shape[i - lead] == 1 && grad.shape()[i] != 1)) dims.push_back(i);
  }
  Tensor r = dims.empty() ? grad : sum(grad, dims, /*keepdim=*/true);
  return r.reshape(shape);
}

}  // namespace strata
