// Sequential: layers named "0", "1", ... applied in order.
#pragma once

#include <initializer_list>
#include <memory>
#include <vector>

#include "core/nn/module.h"

namespace strata::nn {

class Sequential : public Layer {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Layer>> layers);
  /// Appends a layer under the next index as its name.
  Sequential& push_back(std::shared_ptr<Layer> layer);
  /// Applies every layer in order (the identity when empty).
  Tensor forward(const Tensor& x) override;

  int64_t size() const { return static_cast<int64_t>(layers_.size()); }
  /// The i-th layer (negative counts from the end).
  Layer& operator[](int64_t i) const;
  /// The i-th layer as a shared handle (e.g. to regroup layers into pipeline stages).
  std::shared_ptr<Layer> at(int64_t i) const;

 private:
  std::vector<std::shared_ptr<Layer>> layers_;
};

}  // namespace strata::nn
