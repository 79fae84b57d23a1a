// LeNet-5 (LeCun et al. 1998) in its common modern form: ReLU and max pooling.
#pragma once

#include <memory>

#include "core/nn/conv.h"
#include "core/nn/linear.h"

namespace strata::models {

class LeNet5 : public nn::Layer {
 public:
  /// `channels` input channels of 28x28 (MNIST-like) or 32x32 images; `classes` outputs.
  LeNet5(int64_t channels, int64_t classes, Generator& gen);
  /// x (N, channels, 28, 28) -> logits (N, classes).
  Tensor forward(const Tensor& x) override;

 private:
  std::shared_ptr<nn::Conv2d> conv1_, conv2_;
  std::shared_ptr<nn::Linear> fc1_, fc2_, fc3_;
};

}  // namespace strata::models
