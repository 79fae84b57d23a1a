// Sequential container.
#include "core/nn/container.h"

#include <string>

namespace strata::nn {

Sequential::Sequential(std::initializer_list<std::shared_ptr<Layer>> layers) {
  for (const auto& layer : layers) push_back(layer);
}

Sequential& Sequential::push_back(std::shared_ptr<Layer> layer) {
  check(layer != nullptr, "[Sequential] layer ", layers_.size(), " is null");
  layers_.push_back(register_module(std::to_string(layers_.size()), std::move(layer)));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (auto& layer : layers_) h = layer->forward(h);
  return h;
}

Layer& Sequential::operator[](int64_t i) const { return *at(i); }

std::shared_ptr<Layer> Sequential::at(int64_t i) const {
  int64_t n = size();
  check(i >= -n && i < n, "[Sequential] index ", i, " is out of range for ", n, " layers");
  return layers_[static_cast<size_t>(i < 0 ? i + n : i)];
}

}  // namespace strata::nn
