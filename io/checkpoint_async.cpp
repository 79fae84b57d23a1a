// Background checkpoint commits via std::async: one future, at most one save in flight,
// written by a low-priority thread.
#include "io/checkpoint_async.h"

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>

#include "core/error.h"

namespace strata::io {
namespace {

void deep_copy(std::map<std::string, Tensor>& tensors) {
  for (auto& [name, t] : tensors) t = t.detach().to(Device::cpu()).contiguous().clone();
}

}  // namespace

Checkpoint snapshot(const Checkpoint& ckpt) {
  Checkpoint snap = ckpt;
  deep_copy(snap.model);
  deep_copy(snap.optimizer);
  deep_copy(snap.extra);
  for (auto& [name, s] : snap.optimizer_slices) {
    s.values = s.values.detach().to(Device::cpu()).contiguous().clone();
  }
  return snap;
}

AsyncCheckpointWriter::~AsyncCheckpointWriter() {
  if (pending_.valid()) pending_.wait();
}

void AsyncCheckpointWriter::save(const Checkpoint& ckpt) {
  start(ckpt, [](const CheckpointDir& dir, const Checkpoint& c) { return dir.save(c); });
}

void AsyncCheckpointWriter::start(const Checkpoint& ckpt, Job write) {
  wait();
  pending_step_ = ckpt.step;
  // The snapshot is taken here, on the caller's thread, before training moves on.
  pending_ = std::async(std::launch::async, [this, snap = snapshot(ckpt), write] {
    // The writer yields the cores to training (Linux nices threads one by one): on a busy
    // machine it would otherwise preempt a training thread, and an OpenMP region runs at
    // the pace of its slowest thread (bench/ckpt_bench.cpp: 0.55 of the idle steps/s on 2
    // cores, 0.78-0.91 niced). It still runs at full speed whenever training waits, e.g. on
    // the next save or at the end, so training never waits on it longer than on a
    // synchronous save. Best effort.
    setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
    return write(dir_, snap);
  });
}

std::string AsyncCheckpointWriter::poll() {
  if (!pending_.valid()) return "";
  if (pending_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return "";
  return finish();
}

std::string AsyncCheckpointWriter::wait() { return pending_.valid() ? finish() : ""; }

std::string AsyncCheckpointWriter::finish() {
  try {
    return pending_.get();  // get() leaves the future invalid: the next save may start
  } catch (const std::exception& e) {
    std::string latest = dir_.latest();
    throw Error(str_cat("[checkpoint] the background save of step ", pending_step_,
                        " failed: ", e.what(), "; the run stops here. The last committed ",
                        "checkpoint is ", latest.empty() ? "(none)" : latest));
  }
}

}  // namespace strata::io
