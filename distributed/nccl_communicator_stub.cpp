// The NCCL communicator in builds without CUDA: every entry point says how to get one.
#include "distributed/nccl_communicator.h"

namespace strata::dist {

bool nccl_available() { return false; }

std::shared_ptr<Communicator> make_nccl_communicator(Communicator&, int device) {
  throw Error(
      str_cat("[nccl] this build of strata has no CUDA, so no NCCL communicator for cuda:", device,
              "; configure with -DSTRATA_CUDA=ON on a machine with the CUDA "
              "toolkit and NCCL, or use the MPI communicator for host tensors"));
}

}  // namespace strata::dist
