// LeNet-5: conv(6@5x5, pad 2) - pool - conv(16@5x5) - pool - fc 120 - fc 84 - fc classes.
#include "models/lenet.h"

#include "core/ops.h"
#include "core/ops/pool.h"

namespace strata::models {

LeNet5::LeNet5(int64_t channels, int64_t classes, Generator& gen) {
  check(channels > 0 && classes > 1, "[LeNet5] needs channels > 0 and classes > 1, got ", channels,
        " and ", classes);
  conv1_ = register_module(
      "conv1",
      std::make_shared<nn::Conv2d>(
          nn::Conv2dOptions{
              .in_channels = channels, .out_channels = 6, .kernel_size = {5, 5}, .padding = {2, 2}},
          gen));
  conv2_ = register_module(
      "conv2",
      std::make_shared<nn::Conv2d>(
          nn::Conv2dOptions{.in_channels = 6, .out_channels = 16, .kernel_size = {5, 5}}, gen));
  fc1_ = register_module("fc1", std::make_shared<nn::Linear>(nn::LinearOptions{400, 120}, gen));
  fc2_ = register_module("fc2", std::make_shared<nn::Linear>(nn::LinearOptions{120, 84}, gen));
  fc3_ = register_module("fc3", std::make_shared<nn::Linear>(nn::LinearOptions{84, classes}, gen));
}

Tensor LeNet5::forward(const Tensor& x) {
  check(x.dim() == 4 && x.size(2) == 28 && x.size(3) == 28,
        "[LeNet5] expects (N, C, 28, 28) "
        "input, got ",
        x.desc());
  Tensor h = max_pool2d(relu(conv1_->forward(x)), {2, 2}, {2, 2});  // (N, 6, 14, 14)
  h = max_pool2d(relu(conv2_->forward(h)), {2, 2}, {2, 2});         // (N, 16, 5, 5)
  h = h.flatten(1);                                                 // (N, 400)
  h = relu(fc1_->forward(h));                                       // (N, 120)
  h = relu(fc2_->forward(h));                                       // (N, 84)
  return fc3_->forward(h);                                          // (N, classes)
}

}  // namespace strata::models
