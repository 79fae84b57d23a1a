// Parameter-free layers: activations, Flatten and Identity.
#pragma once

#include "core/nn/module.h"

namespace strata::nn {

class ReLU : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
};

struct LeakyReLUOptions {
  double negative_slope = 0.01;
};

class LeakyReLU : public Layer {
 public:
  explicit LeakyReLU(const LeakyReLUOptions& options = {});
  Tensor forward(const Tensor& x) override;

 private:
  LeakyReLUOptions options_;
};

struct GELUOptions {
  bool tanh_approx = false;  // torch's approximate="tanh" (GPT-2)
};

class GELU : public Layer {
 public:
  explicit GELU(const GELUOptions& options = {}) : options_(options) {}
  Tensor forward(const Tensor& x) override;

 private:
  GELUOptions options_;
};

class SiLU : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
};

class Tanh : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
};

class Sigmoid : public Layer {
 public:
  Tensor forward(const Tensor& x) override;
};

struct FlattenOptions {
  int64_t start_dim = 1;
  int64_t end_dim = -1;
};

/// Flattens dims [start_dim, end_dim] into one (by default all but the batch dim).
class Flatten : public Layer {
 public:
  explicit Flatten(const FlattenOptions& options = {}) : options_(options) {}
  Tensor forward(const Tensor& x) override;

 private:
  FlattenOptions options_;
};

class Identity : public Layer {
 public:
  Tensor forward(const Tensor& x) override { return x; }
};

}  // namespace strata::nn
