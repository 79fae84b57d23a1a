// Building the pipeline's directed links: pairs of neighbouring stages in rounds of disjoint
// pairs (each split gives a rank at most one partner), two splits per round (one per
// direction) with the sender first.
#include "distributed/pipeline/links.h"

#include <utility>

#include "core/error.h"

namespace strata::dist::pipeline {

PeerLinks::PeerLinks(Communicator& pipe, bool wrap) {
  const int p = pipe.size(), me = pipe.rank();
  std::vector<std::vector<std::pair<int, int>>> rounds(3);
  for (int s = 0; s + 1 < p; ++s) rounds[s % 2].push_back({s, s + 1});
  if (wrap && p > 2) rounds[2].push_back({p - 1, 0});  // with p = 2 this pair exists already
  for (const auto& pairs : rounds) {
    if (pairs.empty()) continue;  // the same on every rank: it depends on p and wrap only
    int color = p + me, partner = -1, first = -1, second = -1;
    for (auto [a, b] : pairs) {
      if (me == a || me == b) {
        color = a;
        partner = me == a ? b : a;
        first = a;
        second = b;
      }
    }
    for (bool first_sends : {true, false}) {
      const int sender = first_sends ? first : second;
      const bool sending = me == sender;
      std::shared_ptr<Communicator> link = pipe.split(color, sending ? 0 : 1);
      if (partner < 0) continue;  // no partner this round: a one-rank group, dropped
      check_internal(link->size() == 2, "[pipeline.links] a link between stages ", me, " and ",
                     partner, " has ", link->size(), " ranks");
      link->set_rank_names(sending ? std::vector<int>{me, partner} : std::vector<int>{partner, me},
                           p);
      PeerLink& pl = links_[partner];
      pl.stage = partner;
      (sending ? pl.out : pl.in) = Link{link.get(), sending ? 1 : 0};
      owned_.push_back(std::move(link));
    }
  }
  follow(pipe);
}

const PeerLink& PeerLinks::with(int stage) const {
  auto it = links_.find(stage);
  check_internal(it != links_.end(), "[pipeline.links] stage ", stage,
                 " is not a neighbour of this stage");
  return it->second;
}

void PeerLinks::follow(const Communicator& pipe) {
  for (auto& link : owned_) {
    link->set_timeout(pipe.timeout());
    link->set_step(pipe.step());
  }
}

}  // namespace strata::dist::pipeline
