// Saving a training run's checkpoints (two-phase: every owner's file durable, then rank 0's
// commit) and picking the one to resume from.
#include "launch/checkpointing.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/nn/embedding.h"
#include "io/checkpoint_dir.h"

namespace strata::launch {
namespace {

namespace fs = std::filesystem;

/// Dotted keys whose values differ between the checkpoint's config and this run's.
void diff_config(const Json& saved, const Json& now, const std::string& prefix,
                 std::vector<std::string>& out) {
  if (saved.is_object() && now.is_object()) {
    std::set<std::string> keys;
    for (auto it = saved.begin(); it != saved.end(); ++it) keys.insert(it.key());
    for (auto it = now.begin(); it != now.end(); ++it) keys.insert(it.key());
    for (const auto& k : keys) {
      diff_config(saved.value(k, Json()), now.value(k, Json()),
                  prefix.empty() ? k : prefix + "." + k, out);
    }
  } else if (saved != now) {
    out.push_back(prefix + " (" + saved.dump() + " -> " + now.dump() + ")");
  }
}

void announce(const io::Checkpoint& ckpt, const std::string& path, const Json& cfg) {
  std::printf("resume: continuing from %s (step %lld, epoch %lld)\n", path.c_str(),
              static_cast<long long>(ckpt.step), static_cast<long long>(ckpt.epoch));
  std::vector<std::string> diffs;
  diff_config(ckpt.config, cfg, "", diffs);
  for (const auto& d : diffs)
    std::printf("resume: config differs from the checkpoint's: %s\n", d.c_str());
  std::fflush(stdout);
}

std::optional<io::Checkpoint> resume_from_dir(const std::string& dir, const Json& cfg, bool rank0) {
  io::CheckpointDir folder(dir, 1);
  std::vector<std::string> errors;
  auto found = folder.newest_valid(&errors);
  if (!found) {
    check(errors.empty(), "[resume] no checkpoint in ", dir,
          " loads; the newest fails with: ", errors.empty() ? "" : errors.front(),
          ". Remove the damaged files to start fresh, or pass --resume PATH");
    if (rank0) std::printf("resume: no checkpoint in %s; starting fresh\n", dir.c_str());
    return std::nullopt;
  }
  for (const std::string& path : folder.files()) {
    if (path == found->path) break;
    // A damaged file newer than the resume point is moved aside so that retention (newest K
    // by step) never prefers it over the checkpoints this run writes.
    std::error_code ec;
    fs::rename(path, path + ".damaged", ec);
  }
  if (rank0) {
    for (const auto& msg : found->skipped) {
      std::printf("resume: skipping a damaged checkpoint (moved aside as *.damaged): %s\n",
                  msg.c_str());
    }
    announce(found->ckpt, found->path, cfg);
  }
  return std::move(found->ckpt);
}

}  // namespace

Checkpointer::Checkpointer(const Json& cfg, const LaunchEnv& env)
    : cfg_(cfg),
      env_(env),
      dir_(get<std::string>(cfg, "checkpoint.dir"), get<int64_t>(cfg, "checkpoint.keep")) {
  if (get<bool>(cfg, "checkpoint.async"))
    async_ = std::make_unique<io::AsyncCheckpointWriter>(dir_);
}

void Checkpointer::announce(const std::string& path, double seconds) const {
  std::error_code ec;
  double mb = static_cast<double>(fs::file_size(path, ec)) / 1e6;
  std::string parts = n_parts_ ? str_cat(", and ", n_parts_, " part file(s) of other ranks") : "";
  std::printf("checkpoint: saved %s (%.1f MB in %.2f s%s%s)\n", path.c_str(), mb, seconds,
              async_ ? ", in the background" : "", parts.c_str());
  std::fflush(stdout);
}

namespace {

/// Phase 1 of this rank's share: rank 0's main file as a temporary, another rank's part
/// under its final name; both fsynced.
std::string write_share(const io::CheckpointDir& dir, const io::Checkpoint& share) {
  return share.part_rank == 0 ? dir.prepare(share) : dir.write_part(share);
}

}  // namespace

void Checkpointer::save(TrainParts& parts, int64_t step, int64_t epoch) {
  settle(/*block=*/true);  // at most one save in flight
  started_ = std::chrono::steady_clock::now();
  world_ = mesh_place(parts).world;
  std::optional<io::Checkpoint> share = capture_checkpoint(parts, cfg_, env_, step, epoch);
  n_parts_ = share ? share->parts.size() : 0;
  pending_ = step;
  if (async_) {
    if (share) async_->start(*share, write_share);
    return;
  }
  std::string error;
  try {
    if (share) write_share(dir_, *share);
  } catch (const Error& e) {
    std::string latest = dir_.latest();
    error = str_cat("[checkpoint] the save of step ", step, " failed: ", e.what(),
                    "; the run stops here. The last committed checkpoint is ",
                    latest.empty() ? "(none)" : latest);
  }
  agree_and_commit(error);
}

void Checkpointer::poll() { settle(/*block=*/false); }

void Checkpointer::finish() { settle(/*block=*/true); }

void Checkpointer::settle(bool block) {
  if (pending_ < 0) return;
  std::string error;
  bool done = true;
  try {
    if (block) {
      async_->wait();
    } else {
      async_->poll();
      done = !async_->in_flight();
    }
  } catch (const Error& e) {
    error = e.what();
  }
  // The same decision on every rank: any failure stops all, all durable lets rank 0 commit.
  Tensor flags = from_vector<int64_t>({error.empty() ? 0 : 1, done ? 0 : 1}, {2});
  if (world_->size() > 1) world_->all_reduce(flags, dist::ReduceOp::max);
  if (flags.to_vector<int64_t>()[1] != 0 && flags.to_vector<int64_t>()[0] == 0) return;
  agree_and_commit(error);
}

void Checkpointer::agree_and_commit(const std::string& error) {
  int64_t step = pending_;
  pending_ = -1;
  Tensor failed = from_vector<int64_t>({error.empty() ? 0 : 1}, {1});
  if (world_->size() > 1) world_->all_reduce(failed, dist::ReduceOp::max);
  if (failed.to_vector<int64_t>()[0] != 0) {
    std::string latest = dir_.latest();
    check(!error.empty(), "[checkpoint] the save of step ", step,
          " failed on another rank (its output has the reason); the run stops here. The last "
          "committed checkpoint is ",
          latest.empty() ? "(none)" : latest);
    throw Error(error);
  }
  if (world_->rank() != 0) return;
  std::string path = dir_.commit(step);
  announce(path,
           std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
}

std::optional<io::Checkpoint> find_resume(const std::string& mode, const Json& cfg, bool rank0) {
  std::string dir = get<std::string>(cfg, "checkpoint.dir");
  if (mode.empty() || mode == "none") {
    std::vector<std::string> existing = io::CheckpointDir(dir, 1).files();
    check(existing.empty() || get<int64_t>(cfg, "checkpoint.every") == 0, "[resume] ", dir,
          " already holds checkpoints of an earlier run (newest: ",
          existing.empty() ? "" : existing.front(),
          "); pass --resume auto to continue it, or set run_dir (or checkpoint.dir) to a new "
          "folder to start over");
    return std::nullopt;
  }
  if (mode == "auto") return resume_from_dir(dir, cfg, rank0);
  std::error_code ec;
  if (fs::is_directory(mode, ec)) return resume_from_dir(mode, cfg, rank0);
  check(fs::exists(mode, ec), "[resume] --resume ", mode,
        ": no such file or folder; pass auto, none or a checkpoint path");
  io::Checkpoint ckpt = io::read_checkpoint(mode);
  if (rank0) announce(ckpt, mode, cfg);
  return ckpt;
}

void trim_metrics(const std::string& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    Json rec = Json::parse(line, nullptr, false);
    // A torn last line (the process died mid-write) is dropped along with later steps.
    if (!rec.is_discarded() && rec.contains("step") && rec["step"].get<int64_t>() <= step) {
      kept += line + '\n';
    }
  }
  in.close();
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << kept;
    check(out.good(), "[resume] cannot rewrite ", path, "; check run_dir");
  }
  check(std::rename(tmp.c_str(), path.c_str()) == 0, "[resume] cannot replace ", path);
}

}  // namespace strata::launch
