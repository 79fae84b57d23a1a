// The `device` setting (launch/device.h): bad values name the key, "cuda" is the local rank's
// GPU, a process without a usable GPU gets DeviceUnavailable, and the mesh keeps host groups
// for host tensors. Both availability branches are checked wherever the test runs: with a GPU,
// the index errors; without one, the missing-GPU error.
#include <gtest/gtest.h>

#include "core/backend/backend.h"
#include "core/backend/cuda/availability.h"
#include "distributed/communicator.h"
#include "distributed/thread_communicator.h"
#include "launch/device.h"
#include "launch/recipes.h"
#include "tests/support/values.h"

namespace strata::launch {
namespace {

using strata::testing::message_of;

Json with_device(const std::string& value, std::vector<std::string> sets = {}) {
  sets.push_back("device=" + value);
  return resolve_config_json(Json{{"task", "char_lm"}}, sets);
}

TEST(DeviceConfig, BadValuesAreRefusedNamingTheKey) {
  const std::string usage =
      "'; use cpu, cuda (the GPU of this rank's local rank) or cuda:N (N >= 0)";
  for (const char* bad : {"gpu", "cuda:x", "cuda:-1", "cuda:", "CUDA", "cuda:0x1"}) {
    EXPECT_EQ(message_of([&] { with_device(bad); }),
              str_cat("[config] device: unknown value '", bad, usage))
        << bad;
  }
  EXPECT_EQ(message_of([] {
              resolve_config_json(Json{{"device", 0}}, {});
            }),
            "[config] device must be a string, got 0");
}

TEST(DeviceConfig, GoodValuesParseWithoutTouchingAGpu) {
  EXPECT_EQ(configured_device(with_device("cpu")), Device::cpu());
  EXPECT_EQ(configured_device(resolve_config_json(Json::object(), {})), Device::cpu());
  EXPECT_EQ(configured_device(with_device("cuda")), Device::cuda(-1));  // the local rank's
  EXPECT_EQ(configured_device(with_device("cuda:3")), Device::cuda(3));
}

TEST(DeviceConfig, CpuIsAlwaysAvailable) {
  EXPECT_EQ(training_device(with_device("cpu"), LaunchEnv{.local_rank = 5}), Device::cpu());
}

/// The message for `value` on a machine without a usable GPU.
std::string no_gpu_message(const std::string& value, const std::string& why) {
  return str_cat("[config] device: '", value, "' needs a CUDA GPU, but this process has none (",
                 why, "); use device: cpu, or run on a machine with an NVIDIA GPU and its driver");
}

TEST(DeviceAvailability, CudaIsTheLocalRanksGpuOrAClearError) {
  const std::string why = cuda_unavailable_reason();
  auto unavailable = [](const Json& cfg, const LaunchEnv& env) {
    try {
      training_device(cfg, env);
    } catch (const DeviceUnavailable& e) {
      return std::string(e.what());
    }
    return std::string("no DeviceUnavailable");
  };
  if (!why.empty()) {  // this machine: no GPU, and the trainer refuses the same way
    EXPECT_EQ(unavailable(with_device("cuda"), LaunchEnv{}), no_gpu_message("cuda", why));
    EXPECT_EQ(unavailable(with_device("cuda:1"), LaunchEnv{}), no_gpu_message("cuda:1", why));
    auto comm = dist::make_single_communicator();
    try {
      build_training(with_device("cuda"), LaunchEnv{}, comm);
      ADD_FAILURE() << "build_training on cuda without a GPU did not throw";
    } catch (const DeviceUnavailable& e) {
      EXPECT_EQ(std::string(e.what()), no_gpu_message("cuda", why));
    }
    return;
  }
  const int count = cuda_backend().device_count();
  ASSERT_GT(count, 0);
  EXPECT_EQ(training_device(with_device("cuda"), LaunchEnv{}), Device::cuda(0));
  EXPECT_EQ(training_device(with_device("cuda"), LaunchEnv{.local_rank = count - 1}),
            Device::cuda(count - 1));
  EXPECT_EQ(training_device(with_device("cuda:0"), LaunchEnv{.local_rank = count - 1}),
            Device::cuda(0));
  EXPECT_EQ(unavailable(with_device("cuda"), LaunchEnv{.local_rank = count}),
            str_cat("[config] device: 'cuda' picks the GPU of local rank ", count,
                    ", but this node has ", count, " GPU(s); start at most ", count,
                    " ranks per node (one per GPU), or name one with device: cuda:N"));
  EXPECT_EQ(unavailable(with_device("cuda:99"), LaunchEnv{}),
            str_cat("[config] device: 'cuda:99' names GPU 99, but this node has ", count,
                    " GPU(s) (cuda:0 to cuda:", count - 1, "); use one of those, or device: cuda"));
}

TEST(DeviceMesh, HostGroupsCarryHostTensorsAndOneRankNeedsNoNccl) {
  // One rank on a CUDA device: every group stays the (host) world; NCCL is for several ranks.
  Json cfg = with_device("cuda");
  Mesh one = make_mesh(cfg, LaunchEnv{}, dist::make_single_communicator(), Device::cuda(0));
  EXPECT_EQ(one.device, Device::cuda(0));
  EXPECT_STREQ(one.dp_group->backend(), "single");
  EXPECT_EQ(one.dp_host, one.dp_group);
  // pp x dp = 2 x 2 thread ranks on the CPU: dp_host is the data-parallel group itself.
  dist::run_thread_ranks(4, [](dist::Communicator& comm) {
    std::shared_ptr<dist::Communicator> world(&comm, [](dist::Communicator*) {});
    Json cpu = resolve_config_json(Json{{"task", "char_lm"}}, {"parallel.pp=2"});
    Mesh m = make_mesh(cpu, LaunchEnv{.rank = comm.rank(), .world_size = 4}, world);
    EXPECT_EQ(m.device, Device::cpu());
    EXPECT_EQ(m.dp_host, m.dp_group);
    EXPECT_EQ(m.dp_host->size(), 2);
    EXPECT_EQ(m.dp_host->rank(), comm.rank() % 2);
    EXPECT_EQ(m.pipe->size(), 2);
    EXPECT_EQ(m.pipe->rank(), comm.rank() / 2);
  });
}

}  // namespace
}  // namespace strata::launch
