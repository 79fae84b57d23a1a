// Optimizer update kernels: each reads and writes every element once, in the operation
// order of torch.optim's single-tensor path, so f64 trajectories match torch to rounding.
#include "core/backend/cpu/optim.h"

#include <cmath>
#include <limits>

#include "core/backend/cpu/loops.h"

namespace strata::cpu {
namespace {

/// Calls fn(P{}, S{}) with the parameter's storage type P and compute/state type S.
template <class Fn>
void visit_param(const Tensor& param, Fn&& fn) {
  switch (param.dtype()) {
    case DType::f32:
      return fn(float{}, float{});
    case DType::f64:
      return fn(double{}, double{});
    case DType::bf16:
      return fn(BFloat16{}, float{});
    case DType::f16:
      return fn(Half{}, float{});
    default:
      check_internal(false, "optimizer kernel called for ", param.desc());
  }
}

template <class T>
T* ptr(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.raw_data()) : nullptr;
}

}  // namespace

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdHyper& h) {
  const int64_t n = param.numel();
  visit_param(param, [&](auto p_tag, auto s_tag) {
    using P = decltype(p_tag);
    using S = decltype(s_tag);
    P* p = ptr<P>(param);
    const P* g = ptr<const P>(grad);
    S* b = ptr<S>(buf);
    const S lr = S(h.lr), wd = S(h.weight_decay), mom = S(h.momentum), scale = S(h.grad_scale);
    const S damp = S(1 - h.dampening);
    const bool use_mom = h.momentum != 0, first = h.first, nesterov = h.nesterov;
#pragma omp parallel for simd if (n >= kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      S w = convert<S>(p[i]);
      S d = convert<S>(g[i]);
      if (wd != 0) d = d + wd * w;
      d = d * scale;
      if (use_mom) {
        S m = first ? d : mom * b[i] + damp * d;
        b[i] = m;
        d = nesterov ? d + mom * m : m;
      }
      p[i] = convert<P>(w - lr * d);
    }
  });
}

void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
               const Tensor& exp_avg_sq, const Tensor& max_sq, const AdamHyper& h) {
  const int64_t n = param.numel();
  visit_param(param, [&](auto p_tag, auto s_tag) {
    using P = decltype(p_tag);
    using S = decltype(s_tag);
    P* p = ptr<P>(param);
    const P* g = ptr<const P>(grad);
    S *m = ptr<S>(exp_avg), *v = ptr<S>(exp_avg_sq), *mx = ptr<S>(max_sq);
    const S b1 = S(h.beta1), b2 = S(h.beta2), eps = S(h.eps), wd = S(h.weight_decay);
    const S decay = S(1 - h.lr * h.weight_decay), step = S(h.lr / h.bias1);
    const S bc2 = S(h.bias2_sqrt);
    const bool decoupled = h.decoupled, amsgrad = h.amsgrad;
#pragma omp parallel for simd if (n >= kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      S w = convert<S>(p[i]);
      S d = convert<S>(g[i]);
      if (decoupled) {
        w = w * decay;
      } else if (wd != 0) {
        d = d + wd * w;
      }
      S mi = m[i] * b1 + d * (S(1) - b1);
      S vi = v[i] * b2 + (S(1) - b2) * d * d;
      m[i] = mi;
      v[i] = vi;
      if (amsgrad) {
        vi = mx[i] > vi ? mx[i] : vi;
        mx[i] = vi;
      }
      S denom = std::sqrt(vi) / bc2 + eps;
      p[i] = convert<P>(w + -step * mi / denom);
    }
  });
}

void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& sum,
                  const AdagradHyper& h) {
  const int64_t n = param.numel();
  visit_param(param, [&](auto p_tag, auto s_tag) {
    using P = decltype(p_tag);
    using S = decltype(s_tag);
    P* p = ptr<P>(param);
    const P* g = ptr<const P>(grad);
    S* acc = ptr<S>(sum);
    const S clr = S(h.clr), eps = S(h.eps), wd = S(h.weight_decay);
#pragma omp parallel for simd if (n >= kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      S w = convert<S>(p[i]);
      S d = convert<S>(g[i]);
      if (wd != 0) d = d + wd * w;
      S a = acc[i] + d * d;
      acc[i] = a;
      p[i] = convert<P>(w + -clr * d / (std::sqrt(a) + eps));
    }
  });
}

void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg,
                  const Tensor& grad_avg, const Tensor& buf, const RmspropHyper& h) {
  const int64_t n = param.numel();
  visit_param(param, [&](auto p_tag, auto s_tag) {
    using P = decltype(p_tag);
    using S = decltype(s_tag);
    P* p = ptr<P>(param);
    const P* g = ptr<const P>(grad);
    S *sq = ptr<S>(square_avg), *ga = ptr<S>(grad_avg), *b = ptr<S>(buf);
    const S lr = S(h.lr), alpha = S(h.alpha), eps = S(h.eps), wd = S(h.weight_decay);
    const S mom = S(h.momentum);
    const bool centered = h.centered, use_mom = h.momentum > 0;
#pragma omp parallel for simd if (n >= kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      S w = convert<S>(p[i]);
      S d = convert<S>(g[i]);
      if (wd != 0) d = d + wd * w;
      S s = sq[i] * alpha + (S(1) - alpha) * d * d;
      sq[i] = s;
      S avg;
      if (centered) {
        S a = ga[i] * alpha + d * (S(1) - alpha);
        ga[i] = a;
        avg = std::sqrt(s - a * a) + eps;
      } else {
        avg = std::sqrt(s) + eps;
      }
      if (use_mom) {
        S m = b[i] * mom + d / avg;
        b[i] = m;
        p[i] = convert<P>(w - lr * m);
      } else {
        p[i] = convert<P>(w + -lr * d / avg);
      }
    }
  });
}

double sum_abs_pow(const Tensor& x, double pw) {
  const int64_t n = x.numel();
  double total = 0;
  visit_param(x, [&](auto p_tag, auto) {
    using P = decltype(p_tag);
    const P* p = ptr<const P>(x);
    if (std::isinf(pw)) {
      double m = 0;
#pragma omp parallel for reduction(max : m) if (n >= kParallelGrain)
      for (int64_t i = 0; i < n; ++i) m = std::max(m, std::abs(convert<double>(p[i])));
      total = m;
    } else if (pw == 2) {
      double s = 0;
#pragma omp parallel for simd reduction(+ : s) if (n >= kParallelGrain)
      for (int64_t i = 0; i < n; ++i) {
        double v = convert<double>(p[i]);
        s += v * v;
      }
      total = s;
    } else {
      double s = 0;
#pragma omp parallel for reduction(+ : s) if (n >= kParallelGrain)
      for (int64_t i = 0; i < n; ++i) s += std::pow(std::abs(convert<double>(p[i])), pw);
      total = s;
    }
  });
  return total;
}

}  // namespace strata::cpu
