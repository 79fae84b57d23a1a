// The autograd graph: one Node per recorded op result, edges to the nodes of its inputs.
// Backward closures sit next to their forward in core/ops/<family>.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace strata {

/// Maps the gradient of an op's output to the gradients of its inputs (undefined = none).
/// Written with differentiable ops, so that backward with create_graph builds a graph too.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct Node {
  std::string name;                         // op name, for error messages
  std::vector<std::shared_ptr<Node>> next;  // one per input; null when it needs no gradient
  BackwardFn backward;                      // released after use unless retain_graph
  std::weak_ptr<TensorImpl> leaf;           // the leaf, on gradient accumulators only
  bool accumulator = false;                 // true for a leaf's gradient accumulator
  uint64_t sequence = 0;                    // creation order; later nodes run first
  bool double_backward = true;              // false for fused ops with an explicit kernel
};

/// Attaches a node to `out` when grad mode is on and any input requires a gradient.
/// `backward` receives d(loss)/d(out) and returns one gradient per input, in order.
Tensor record(const char* op, Tensor out, std::initializer_list<Tensor> inputs,
              BackwardFn backward);
/// As record, for inputs held in a vector (concat, stack).
Tensor record(const char* op, Tensor out, const std::vector<Tensor>& inputs, BackwardFn backward);
/// As record, for fused ops whose backward is a kernel, not differentiable ops:
/// differentiating through it again raises a clear error.
Tensor record_fused(const char* op, Tensor out, std::initializer_list<Tensor> inputs,
                    BackwardFn backward);

/// True when grad mode is on and any of the tensors requires a gradient.
bool any_requires_grad(std::initializer_list<Tensor> inputs);

/// Gradients of `outputs` with respect to `inputs` (weighted by `grad_outputs`), without
/// touching any .grad. With create_graph the result is itself differentiable.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false,
                         bool create_graph = false, bool allow_unused = false);

/// Runs the reverse pass from `roots`, accumulating into the leaves' .grad.
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots,
                  bool retain_graph, bool create_graph);

/// Sums a broadcast gradient back to `shape` (the backward of implicit broadcasting).
Tensor sum_to(const Tensor& grad, const Shape& shape);

}  // namespace strata
