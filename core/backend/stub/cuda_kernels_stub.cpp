// The CUDA kernel entry points of a build without CUDA (STRATA_CUDA=OFF). No tensor can live
// on a GPU in such a build, so these only link; each throws, naming the op, if ever reached.
#include "core/backend/cuda/attention.h"
#include "core/backend/cuda/availability.h"
#include "core/backend/cuda/conv.h"
#include "core/backend/cuda/copy.h"
#include "core/backend/cuda/elementwise.h"
#include "core/backend/cuda/embedding.h"
#include "core/backend/cuda/index.h"
#include "core/backend/cuda/linalg.h"
#include "core/backend/cuda/loss.h"
#include "core/backend/cuda/norm.h"
#include "core/backend/cuda/optim.h"
#include "core/backend/cuda/pool.h"
#include "core/backend/cuda/reduce.h"
#include "core/backend/cuda/softmax.h"

namespace strata {

std::string cuda_unavailable_reason() {
  return "strata was built without CUDA (STRATA_CUDA=OFF); reconfigure with -DSTRATA_CUDA=ON";
}

namespace cuda {
namespace {

[[noreturn]] void needs_cuda(const char* op) {
  throw Error(str_cat("[", op,
                      "] needs a CUDA build; reconfigure with -DSTRATA_CUDA=ON or run "
                      "on the CPU (device: cpu)"));
}

}  // namespace

// One line per entry point: name, then its parameters as in backend/cuda/<family>.h.
#define STRATA_CUDA_STUB(ret, name, ...) \
  ret name(__VA_ARGS__) { needs_cuda(#name); }

using TL = std::vector<Tensor>;
using Dims = std::vector<int64_t>;
using C = const Tensor&;

STRATA_CUDA_STUB(void, copy, C, C)
STRATA_CUDA_STUB(void, fill, C, double)
STRATA_CUDA_STUB(void, binary, BinaryOp, C, C, C)
STRATA_CUDA_STUB(void, unary, UnaryOp, C, C, double)
STRATA_CUDA_STUB(void, unary_backward, UnaryOp, C, C, C, C, double)
STRATA_CUDA_STUB(void, where, C, C, C, C)
STRATA_CUDA_STUB(void, clamp, C, C, double, double)
STRATA_CUDA_STUB(void, reduce, ReduceOp, C, const Dims&, C)
STRATA_CUDA_STUB(void, softmax, C, C, int64_t, int64_t, int64_t, bool)
STRATA_CUDA_STUB(void, softmax_backward, C, C, C, int64_t, int64_t, int64_t, bool)
STRATA_CUDA_STUB(void, logsumexp, C, C, int64_t, int64_t, int64_t)
STRATA_CUDA_STUB(void, cross_entropy, C, C, C, C, int64_t, double)
STRATA_CUDA_STUB(void, cross_entropy_backward, C, C, C, C, C, int64_t, double)
STRATA_CUDA_STUB(void, layer_norm, C, C, C, C, C, C, double)
STRATA_CUDA_STUB(void, layer_norm_backward, C, C, C, C, C, C, C, C)
STRATA_CUDA_STUB(void, channel_stats, C, C, C)
STRATA_CUDA_STUB(void, channel_norm, C, C, C, C, C, C)
STRATA_CUDA_STUB(void, channel_norm_backward, C, C, C, C, C, C, C, C)
STRATA_CUDA_STUB(void, max_pool2d, C, C, C, const cpu::PoolGeometry&)
STRATA_CUDA_STUB(void, max_pool2d_scatter, C, C, C, const cpu::PoolGeometry&)
STRATA_CUDA_STUB(void, max_pool2d_gather, C, C, C, const cpu::PoolGeometry&)
STRATA_CUDA_STUB(void, avg_pool2d, C, C, const cpu::PoolGeometry&)
STRATA_CUDA_STUB(void, avg_pool2d_backward, C, C, const cpu::PoolGeometry&)
STRATA_CUDA_STUB(void, dropout, C, C, C, uint64_t, uint64_t, float, double)
STRATA_CUDA_STUB(void, dropout_backward, C, C, C, double)
STRATA_CUDA_STUB(int64_t, first_out_of_range, C, int64_t)
STRATA_CUDA_STUB(void, gather, C, int64_t, C, C)
STRATA_CUDA_STUB(void, scatter, C, int64_t, C, C, bool)
STRATA_CUDA_STUB(void, upsample_nearest2d, C, C, int64_t, int64_t)
STRATA_CUDA_STUB(void, index_select, C, int64_t, C, C)
STRATA_CUDA_STUB(void, index_add, C, int64_t, C, C, int64_t)
STRATA_CUDA_STUB(void, gemm, C, C, C, double, double, bool)
STRATA_CUDA_STUB(bool, gemm_bias, C, C, C, C, bool)
STRATA_CUDA_STUB(void, conv2d_forward, C, C, C, C, const cpu::ConvGeometry&)
STRATA_CUDA_STUB(void, conv2d_input_grad, C, C, C, C, const cpu::ConvGeometry&)
STRATA_CUDA_STUB(void, conv2d_weight_grad, C, C, C, const cpu::ConvGeometry&)
STRATA_CUDA_STUB(void, sgd_step, const TL&, const TL&, const TL&, const cpu::SgdHyper&)
STRATA_CUDA_STUB(void, attention_forward, C, C, C, C, bool, double, C, C)
STRATA_CUDA_STUB(void, attention_backward, C, C, C, C, bool, double, C, C, C, C, C, C)
STRATA_CUDA_STUB(void, adam_step, const TL&, const TL&, const TL&, const TL&, const TL&,
                 const cpu::AdamHyper&)
STRATA_CUDA_STUB(void, adagrad_step, const TL&, const TL&, const TL&, const cpu::AdagradHyper&)
STRATA_CUDA_STUB(void, rmsprop_step, const TL&, const TL&, const TL&, const TL&, const TL&,
                 const cpu::RmspropHyper&)

#undef STRATA_CUDA_STUB

}  // namespace cuda
}  // namespace strata
