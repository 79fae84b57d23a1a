// Data-parallel equivalence for the harder cases, on any communicator (thread ranks and
// mpirun): SyncBatchNorm, BatchNorm buffer broadcast, a 2-block GPT, a GAN with two modules
// and two optimizers, and a module left outside DataParallel.
#pragma once

#include <string>

#include "distributed/communicator.h"

namespace strata::dist::testing {

/// A CNN with SyncBatchNorm under DP equals the same CNN with BatchNorm2d in one process on
/// the global batch: parameters and running statistics within `tolerance` after K steps.
void check_sync_batch_norm_matches_single_process(Communicator& comm, DType dtype,
                                                  double tolerance);

/// Plain BatchNorm under DP: each rank's running statistics follow its own batches until
/// broadcast_buffers() copies rank 0's to every rank.
void check_batch_norm_buffers_broadcast(Communicator& comm);

/// A 2-block GPT under DP equals one process on the global batch, trained with "adamw" or
/// "sgd" (momentum). AdamW turns rounding noise in gradients that are zero in exact
/// arithmetic (the attention key bias) into steps of size lr, so compare it in f64.
void check_gpt_matches_single_process(Communicator& comm, DType dtype, double tolerance,
                                      const std::string& optimizer);

/// A GAN (MLP generator and discriminator, one DataParallel and one optimizer each; the
/// generator step runs inside the discriminator's no_sync) equals one process, an EMA of
/// the generator kept outside DP equals the single-process EMA, and a rank-dependent "key
/// encoder" outside DP keeps its own values.
void check_gan_matches_single_process(Communicator& comm, DType dtype, double tolerance);

}  // namespace strata::dist::testing
