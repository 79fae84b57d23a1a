// The timeline: overlap arithmetic on hand-made spans, the Chrome trace file, and the spans
// DataParallel records for its buckets.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/nn/activation.h"
#include "core/nn/container.h"
#include "core/nn/linear.h"
#include "core/ops/reduce.h"
#include "distributed/data_parallel.h"
#include "distributed/thread_communicator.h"
#include "distributed/timeline.h"

namespace strata::dist {
namespace {

Span span(const char* category, int64_t start, int64_t end) { return {"s", category, start, end}; }

TEST(Timeline, OverlapCountsTheCoveredPartOfTheCommunicationUnion) {
  // comm: [0, 10) and [5, 20) -> union [0, 20); [30, 40). compute: [8, 12), [15, 35).
  std::vector<Span> spans = {span("comm", 0, 10),    span("comm", 5, 20),     span("comm", 30, 40),
                             span("compute", 8, 12), span("compute", 15, 35), span("wait", 0, 100)};
  Overlap o = overlap(spans, "comm", "compute");
  EXPECT_NEAR(o.comm_s, 30e-6, 1e-12);
  EXPECT_NEAR(o.hidden_s, (4 + 5 + 5) * 1e-6, 1e-12);  // [8,12), [15,20), [30,35)
  EXPECT_NEAR(o.hidden_share(), 14.0 / 30.0, 1e-12);
  EXPECT_EQ(overlap({}, "comm", "compute").hidden_share(), 0.0);
}

TEST(Timeline, WritesAChromeTrace) {
  Timeline timeline(3);
  auto t0 = Timeline::Clock::now();
  timeline.add("all_reduce \"b0\"", "comm", t0, t0 + std::chrono::microseconds(250), 4096);
  { Timeline::Scope scope(&timeline, "backward", "compute"); }
  std::string path =
      (std::filesystem::temp_directory_path() / "strata_timeline_test.json").string();
  timeline.write_chrome_trace(path);
  std::ifstream f(path);
  std::stringstream text;
  text << f.rdbuf();
  std::string json = text.str();
  EXPECT_EQ(json.rfind("{\"traceEvents\": [\n", 0), 0u) << json;
  EXPECT_NE(json.find("{\"name\": \"all_reduce \\\"b0\\\"\", \"cat\": \"comm\", \"ph\": \"X\", "),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"dur\": 250, \"pid\": 3, \"tid\": 0, \"args\": {\"bytes\": 4096}}"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"name\": \"backward\", \"cat\": \"compute\""), std::string::npos);
  EXPECT_NE(json.find("\"tid\": 1"), std::string::npos);  // compute on its own track
  std::filesystem::remove(path);
}

TEST(Timeline, DataParallelRecordsEveryBucketOncePerStep) {
  run_thread_ranks(2, [](Communicator& comm) {
    comm.set_timeout(std::chrono::seconds(60));
    Generator gen(1);
    nn::Sequential model({std::make_shared<nn::Linear>(nn::LinearOptions{4, 8}, gen),
                          std::make_shared<nn::ReLU>(),
                          std::make_shared<nn::Linear>(nn::LinearOptions{8, 2}, gen)});
    DataParallel dp(model, std::shared_ptr<Communicator>(&comm, [](Communicator*) {}),
                    {.bucket_bytes = 160, .first_bucket_bytes = 72});
    auto timeline = std::make_shared<Timeline>(comm.rank());
    dp.set_timeline(timeline);
    for (int step = 0; step < 2; ++step) {
      sum(model.forward(ones({3, 4}))).backward();
      dp.finish_gradients();
    }
    std::vector<std::string> comm_spans;
    int64_t bytes = 0;
    for (const Span& s : timeline->spans()) {
      if (s.category == "comm") comm_spans.push_back(s.name);
      if (s.category == "comm") bytes += s.bytes;
      EXPECT_LE(s.start_us, s.end_us);
    }
    std::sort(comm_spans.begin(), comm_spans.end());
    EXPECT_EQ(comm_spans, (std::vector<std::string>{"all_reduce bucket 0", "all_reduce bucket 0",
                                                    "all_reduce bucket 1", "all_reduce bucket 1"}));
    // Buckets hold the gradients plus one flag per parameter: (2 + 16 + 2) + (8 + 32 + 2).
    EXPECT_EQ(bytes, 2 * 4 * (20 + 42));
  });
}

}  // namespace
}  // namespace strata::dist
