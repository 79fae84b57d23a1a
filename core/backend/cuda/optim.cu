// Optimizer updates on the GPU, fused across tensors: one launch updates up to kMaxTensors
// parameters (grid.y picks the tensor, grid.x strides over its elements), each element read
// and written once in the operation order of cpu/optim.cpp.
#include <algorithm>

#include "core/backend/cuda/loops.cuh"
#include "core/backend/cuda/optim.h"

namespace strata::cuda {
namespace {

constexpr int kMaxTensors = 32;

/// Pointers of up to kMaxTensors tensors for K roles (param, grad, state...), passed by value.
template <int K>
struct TensorBatch {
  void* ptr[K][kMaxTensors];
  int64_t n[kMaxTensors];
};

template <class P, class S>
__global__ void sgd_kernel(TensorBatch<3> tb, cpu::SgdHyper h) {
  const int t = blockIdx.y;
  P* p = static_cast<P*>(tb.ptr[0][t]);
  const P* g = static_cast<const P*>(tb.ptr[1][t]);
  S* b = static_cast<S*>(tb.ptr[2][t]);
  const S lr = S(h.lr), wd = S(h.weight_decay), mom = S(h.momentum), scale = S(h.grad_scale);
  const S damp = S(1 - h.dampening);
  const bool use_mom = h.momentum != 0;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < tb.n[t]; i += step) {
    S w = convert<S>(p[i]);
    S d = convert<S>(g[i]);
    if (wd != S(0)) d = d + wd * w;
    d = d * scale;
    if (use_mom) {
      S m = h.first ? d : mom * b[i] + damp * d;
      b[i] = m;
      d = h.nesterov ? d + mom * m : m;
    }
    p[i] = convert<P>(w - lr * d);
  }
}

template <class P, class S>
__global__ void adam_kernel(TensorBatch<5> tb, cpu::AdamHyper h) {
  const int t = blockIdx.y;
  P* p = static_cast<P*>(tb.ptr[0][t]);
  const P* g = static_cast<const P*>(tb.ptr[1][t]);
  S *m = static_cast<S*>(tb.ptr[2][t]), *v = static_cast<S*>(tb.ptr[3][t]);
  S* mx = static_cast<S*>(tb.ptr[4][t]);
  const S b1 = S(h.beta1), b2 = S(h.beta2), eps = S(h.eps), wd = S(h.weight_decay);
  const S decay = S(1 - h.lr * h.weight_decay), stepsize = S(h.lr / h.bias1);
  const S bc2 = S(h.bias2_sqrt);
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < tb.n[t]; i += step) {
    S w = convert<S>(p[i]);
    S d = convert<S>(g[i]);
    if (h.decoupled) {
      w = w * decay;
    } else if (wd != S(0)) {
      d = d + wd * w;
    }
    S mi = m[i] * b1 + d * (S(1) - b1);
    S vi = v[i] * b2 + (S(1) - b2) * d * d;
    m[i] = mi;
    v[i] = vi;
    if (h.amsgrad) {
      vi = mx[i] > vi ? mx[i] : vi;
      mx[i] = vi;
    }
    S denom = ::sqrt(vi) / bc2 + eps;
    p[i] = convert<P>(w + -stepsize * mi / denom);
  }
}

template <class P, class S>
__global__ void adagrad_kernel(TensorBatch<3> tb, cpu::AdagradHyper h) {
  const int t = blockIdx.y;
  P* p = static_cast<P*>(tb.ptr[0][t]);
  const P* g = static_cast<const P*>(tb.ptr[1][t]);
  S* acc = static_cast<S*>(tb.ptr[2][t]);
  const S clr = S(h.clr), eps = S(h.eps), wd = S(h.weight_decay);
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < tb.n[t]; i += step) {
    S w = convert<S>(p[i]);
    S d = convert<S>(g[i]);
    if (wd != S(0)) d = d + wd * w;
    S a = acc[i] + d * d;
    acc[i] = a;
    p[i] = convert<P>(w + -clr * d / (::sqrt(a) + eps));
  }
}

template <class P, class S>
__global__ void rmsprop_kernel(TensorBatch<5> tb, cpu::RmspropHyper h) {
  const int t = blockIdx.y;
  P* p = static_cast<P*>(tb.ptr[0][t]);
  const P* g = static_cast<const P*>(tb.ptr[1][t]);
  S *sq = static_cast<S*>(tb.ptr[2][t]), *ga = static_cast<S*>(tb.ptr[3][t]);
  S* b = static_cast<S*>(tb.ptr[4][t]);
  const S lr = S(h.lr), alpha = S(h.alpha), eps = S(h.eps), wd = S(h.weight_decay);
  const S mom = S(h.momentum);
  const bool use_mom = h.momentum > 0;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < tb.n[t]; i += step) {
    S w = convert<S>(p[i]);
    S d = convert<S>(g[i]);
    if (wd != S(0)) d = d + wd * w;
    S s = sq[i] * alpha + (S(1) - alpha) * d * d;
    sq[i] = s;
    S avg;
    if (h.centered) {
      S a = ga[i] * alpha + d * (S(1) - alpha);
      ga[i] = a;
      avg = ::sqrt(s - a * a) + eps;
    } else {
      avg = ::sqrt(s) + eps;
    }
    if (use_mom) {
      S m = b[i] * mom + d / avg;
      b[i] = m;
      p[i] = convert<P>(w - lr * m);
    } else {
      p[i] = convert<P>(w + -lr * d / avg);
    }
  }
}

/// Calls fn(P{}, S{}) with the parameter type and its state type (f32 for bf16/f16).
template <class Fn>
void visit_param(const Tensor& param, Fn&& fn) {
  switch (param.dtype()) {
    case DType::f32:
      return fn(float{}, float{});
    case DType::f64:
      return fn(double{}, double{});
    case DType::bf16:
      return fn(bf16{}, float{});
    case DType::f16:
      return fn(f16{}, float{});
    default:
      check_internal(false, "CUDA optimizer kernel called for ", param.desc());
  }
}

/// Splits `params` into launches of kMaxTensors; roles[r][i] is role r of tensor i (or empty).
template <int K, class Launch>
void for_batches(const std::vector<Tensor>& params,
                 const std::vector<const std::vector<Tensor>*>& roles, Launch launch) {
  for (size_t first = 0; first < params.size(); first += kMaxTensors) {
    const size_t count = std::min<size_t>(kMaxTensors, params.size() - first);
    TensorBatch<K> tb{};
    int64_t most = 0;
    for (size_t j = 0; j < count; ++j) {
      const Tensor& p = params[first + j];
      check_internal(p.dtype() == params[0].dtype() && p.device() == params[0].device(),
                     "fused optimizer step mixes ", p.desc(), " and ", params[0].desc());
      tb.n[j] = p.numel();
      most = std::max(most, p.numel());
      for (int r = 0; r < K; ++r) {
        const auto& role = *roles[r];
        tb.ptr[r][j] =
            role.empty() || !role[first + j].defined() ? nullptr : role[first + j].raw_data();
      }
    }
    if (most == 0) continue;
    dim3 grid(std::min<unsigned>(blocks_for(most), 1024), static_cast<unsigned>(count));
    launch(tb, grid);
  }
}

}  // namespace

void sgd_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
              const std::vector<Tensor>& bufs, const cpu::SgdHyper& h) {
  if (params.empty()) return;
  check_internal(grads.size() == params.size(), "sgd_step: ", grads.size(), " grads for ",
                 params.size(), " params");
  check_internal(h.momentum == 0 || bufs.size() == params.size(), "sgd_step: momentum buffers");
  cudaStream_t stream = stream_for(params[0].device());
  visit_param(params[0], [&](auto p_tag, auto s_tag) {
    using P = decltype(p_tag);
    using S = decltype(s_tag);
    for_batches<3>(params, {&params, &grads, &bufs}, [&](const TensorBatch<3>& tb, dim3 grid) {
      sgd_kernel<P, S><<<grid, kThreads, 0, stream>>>(tb, h);
      STRATA_CUDA_CHECK_LAUNCH("sgd_step");
    });
  });
}

void adam_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
               const std::vector<Tensor>& exp_avg, const std::vector<Tensor>& exp_avg_sq,
               const std::vector<Tensor>& max_sq, const cpu::AdamHyper& h) {
  if (params.empty()) return;
  check_internal(grads.size() == params.size() && exp_avg.size() == params.size() &&
                     exp_avg_sq.size() == params.size(),
                 "adam_step: state lists do not match ", params.size(), " params");
  check_internal(!h.amsgrad || max_sq.size() == params.size(), "adam_step: amsgrad buffers");
  cudaStream_t stream = stream_for(params[0].device());
  visit_param(params[0], [&](auto p_tag, auto s_tag) {
    using P = decltype(p_tag);
    using S = decltype(s_tag);
    for_batches<5>(params, {&params, &grads, &exp_avg, &exp_avg_sq, &max_sq},
                   [&](const TensorBatch<5>& tb, dim3 grid) {
                     adam_kernel<P, S><<<grid, kThreads, 0, stream>>>(tb, h);
                     STRATA_CUDA_CHECK_LAUNCH("adam_step");
                   });
  });
}

void adagrad_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                  const std::vector<Tensor>& sums, const cpu::AdagradHyper& h) {
  if (params.empty()) return;
  check_internal(grads.size() == params.size() && sums.size() == params.size(),
                 "adagrad_step: state lists do not match ", params.size(), " params");
  cudaStream_t stream = stream_for(params[0].device());
  visit_param(params[0], [&](auto p_tag, auto s_tag) {
    using P = decltype(p_tag);
    using S = decltype(s_tag);
    for_batches<3>(params, {&params, &grads, &sums}, [&](const TensorBatch<3>& tb, dim3 grid) {
      adagrad_kernel<P, S><<<grid, kThreads, 0, stream>>>(tb, h);
      STRATA_CUDA_CHECK_LAUNCH("adagrad_step");
    });
  });
}

void rmsprop_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                  const std::vector<Tensor>& square_avg, const std::vector<Tensor>& grad_avg,
                  const std::vector<Tensor>& bufs, const cpu::RmspropHyper& h) {
  if (params.empty()) return;
  check_internal(grads.size() == params.size() && square_avg.size() == params.size(),
                 "rmsprop_step: state lists do not match ", params.size(), " params");
  check_internal(!h.centered || grad_avg.size() == params.size(), "rmsprop_step: grad_avg");
  check_internal(h.momentum <= 0 || bufs.size() == params.size(), "rmsprop_step: buffers");
  cudaStream_t stream = stream_for(params[0].device());
  visit_param(params[0], [&](auto p_tag, auto s_tag) {
    using P = decltype(p_tag);
    using S = decltype(s_tag);
    for_batches<5>(params, {&params, &grads, &square_avg, &grad_avg, &bufs},
                   [&](const TensorBatch<5>& tb, dim3 grid) {
                     rmsprop_kernel<P, S><<<grid, kThreads, 0, stream>>>(tb, h);
                     STRATA_CUDA_CHECK_LAUNCH("rmsprop_step");
                   });
  });
}

}  // namespace strata::cuda
