// The point-to-point links between neighbouring pipeline stages: one two-rank communicator
// per direction of each neighbour pair. NCCL completes a send only when its receive runs and
// runs a stream in order, so a send and a receive sharing one stream deadlock 1F1B; one
// channel per direction behaves as buffered sends (Transport::directed in the simulator).
// Every backend builds and uses the same links, so MPI and thread ranks run NCCL's lines.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "distributed/communicator.h"

namespace strata::dist::pipeline {

/// One direction between this stage and a neighbour: the communicator carrying it and the
/// neighbour's rank in that communicator.
struct Link {
  Communicator* comm = nullptr;
  int peer = -1;
};

/// Both directions between this stage and neighbouring stage `stage`.
struct PeerLink {
  int stage = -1;
  Link out;  // this stage's messages to the neighbour
  Link in;   // the neighbour's messages to this stage
};

class PeerLinks {
 public:
  /// Collective over `pipe` (rank = stage): links stages s and s + 1 and, with `wrap`, the
  /// last stage and the first (interleaved schedules pass from one to the other). Errors on
  /// a link name the ranks of `pipe`.
  PeerLinks(Communicator& pipe, bool wrap);
  /// The link with neighbouring stage `stage`; an internal error for any other stage.
  const PeerLink& with(int stage) const;
  /// Gives every link the pipeline group's timeout and step (named in timeout errors).
  void follow(const Communicator& pipe);

 private:
  std::vector<std::shared_ptr<Communicator>> owned_;
  std::map<int, PeerLink> links_;
};

}  // namespace strata::dist::pipeline
