// Values are small multiples of 1/4, so every sum is exact in any order and results can be
// compared with ==, whatever algorithm the library picks.
#include "tests/distributed/collective_checks.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "core/ops/elementwise.h"

namespace strata::dist::testing {
namespace {

/// Rank r's i-th input value (integers for integral T).
template <class T>
T value(int r, int64_t i) {
  double v = 0.25 * ((r + 1) * 3 + (i % 11) - 5);
  return static_cast<T>(std::is_integral_v<T> ? 4 * v : v);
}

template <class T>
Tensor rank_tensor(int r, int64_t n) {
  std::vector<T> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = value<T>(r, i);
  return from_vector<T>(v, {n});
}

template <class T>
std::vector<T> reference(int size, int64_t n, ReduceOp op) {
  std::vector<T> out(n);
  for (int64_t i = 0; i < n; ++i) {
    T acc = value<T>(0, i);
    for (int r = 1; r < size; ++r) {
      T x = value<T>(r, i);
      acc = op == ReduceOp::max ? std::max(acc, x) : acc + x;
    }
    out[i] = op == ReduceOp::avg ? acc / static_cast<T>(size) : acc;
  }
  return out;
}

template <class T>
void expect_all_reduce(Communicator& comm, int64_t n, ReduceOp op) {
  Tensor t = rank_tensor<T>(comm.rank(), n);
  comm.all_reduce(t, op);
  EXPECT_EQ(t.to_vector<T>(), reference<T>(comm.size(), n, op))
      << "all_reduce " << reduce_op_name(op) << " of " << t.desc() << " on rank " << comm.rank();
}

}  // namespace

void check_all_reduce(Communicator& comm) {
  for (int64_t n : {1, 7, 1000}) {
    expect_all_reduce<float>(comm, n, ReduceOp::sum);
    expect_all_reduce<double>(comm, n, ReduceOp::sum);
    expect_all_reduce<int32_t>(comm, n, ReduceOp::sum);
    expect_all_reduce<int64_t>(comm, n, ReduceOp::sum);
    expect_all_reduce<float>(comm, n, ReduceOp::max);
    expect_all_reduce<int64_t>(comm, n, ReduceOp::max);
  }
  // avg is the exact sum divided by size in the tensor's dtype, as the reference does.
  expect_all_reduce<float>(comm, 13, ReduceOp::avg);
  expect_all_reduce<double>(comm, 13, ReduceOp::avg);
  Tensor matrix = rank_tensor<float>(comm.rank(), 6).reshape({2, 3});  // shape is kept
  comm.all_reduce(matrix, ReduceOp::sum);
  EXPECT_EQ(matrix.shape(), (Shape{2, 3}));
  EXPECT_EQ(matrix.to_vector<float>(), reference<float>(comm.size(), 6, ReduceOp::sum));
}

void check_all_gather(Communicator& comm) {
  const int64_t k = 5;
  Tensor in = rank_tensor<int64_t>(comm.rank(), k);
  Tensor out = zeros({comm.size(), k}, DType::i64);
  comm.all_gather(in, out);
  std::vector<int64_t> expected;
  for (int r = 0; r < comm.size(); ++r) {
    auto part = rank_tensor<int64_t>(r, k).to_vector<int64_t>();
    expected.insert(expected.end(), part.begin(), part.end());
  }
  EXPECT_EQ(out.to_vector<int64_t>(), expected) << "all_gather on rank " << comm.rank();
}

void check_reduce_scatter(Communicator& comm) {
  const int64_t k = 4;
  const int64_t n = k * comm.size();
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::max}) {
    Tensor in = rank_tensor<double>(comm.rank(), n);
    Tensor out = zeros({k}, DType::f64);
    comm.reduce_scatter(in, out, op);
    auto full = reference<double>(comm.size(), n, op);
    std::vector<double> mine(full.begin() + comm.rank() * k, full.begin() + (comm.rank() + 1) * k);
    EXPECT_EQ(out.to_vector<double>(), mine)
        << "reduce_scatter " << reduce_op_name(op) << " on rank " << comm.rank();
  }
}

void check_broadcast(Communicator& comm) {
  for (int root : {0, comm.size() - 1}) {
    Tensor t = rank_tensor<float>(comm.rank(), 9);
    comm.broadcast(t, root);
    EXPECT_EQ(t.to_vector<float>(), rank_tensor<float>(root, 9).to_vector<float>())
        << "broadcast from " << root << " on rank " << comm.rank();
  }
  Tensor bytes = full({3}, comm.rank() == 0 ? 1 : 0, DType::u8);  // any dtype moves as bytes
  comm.broadcast(bytes, 0);
  EXPECT_EQ(bytes.to_vector<uint8_t>(), (std::vector<uint8_t>{1, 1, 1}));
}

void check_send_recv(Communicator& comm) {
  int n = comm.size();
  int next = (comm.rank() + 1) % n;
  int prev = (comm.rank() + n - 1) % n;
  Tensor out = rank_tensor<float>(comm.rank(), 6);
  Tensor in = zeros({6});
  Tensor in2 = zeros({6});
  WorkPtr r1 = comm.recv_async(in, prev, 7);
  WorkPtr r2 = comm.recv_async(in2, prev, 7);  // a second message, same tag: in order
  WorkPtr s1 = comm.send_async(out, next, 7);
  Tensor out2 = out * 2.0;
  WorkPtr s2 = comm.send_async(out2, next, 7);
  for (WorkPtr* w : {&s1, &s2, &r1, &r2}) (*w)->wait(comm.timeout());
  auto expected = rank_tensor<float>(prev, 6).to_vector<float>();
  EXPECT_EQ(in.to_vector<float>(), expected) << "recv on rank " << comm.rank();
  for (auto& v : expected) v *= 2;
  EXPECT_EQ(in2.to_vector<float>(), expected) << "second recv on rank " << comm.rank();
}

void check_barrier_and_async_order(Communicator& comm) {
  comm.barrier();
  Tensor a = full({3}, comm.rank() + 1.0);
  Tensor b = full({1000}, 2.0 * (comm.rank() + 1));
  WorkPtr wa = comm.all_reduce_async(a, ReduceOp::sum);
  WorkPtr wb = comm.all_reduce_async(b, ReduceOp::max);
  wb->wait(comm.timeout());  // waited out of launch order
  wa->wait(comm.timeout());
  double n = comm.size();
  EXPECT_EQ(a.to_vector<float>(), std::vector<float>(3, n * (n + 1) / 2));
  EXPECT_EQ(b.to_vector<float>(), std::vector<float>(1000, 2 * n));
  EXPECT_TRUE(wa->test());
}

void check_split(Communicator& comm) {
  // Even and odd ranks form two groups, each ordered by descending world rank.
  int color = comm.rank() % 2;
  auto sub = comm.split(color, -comm.rank());
  std::vector<int> members;
  for (int r = 0; r < comm.size(); ++r) {
    if (r % 2 == color) members.push_back(r);
  }
  std::reverse(members.begin(), members.end());
  EXPECT_EQ(sub->size(), static_cast<int>(members.size()));
  int expected_rank =
      static_cast<int>(std::find(members.begin(), members.end(), comm.rank()) - members.begin());
  EXPECT_EQ(sub->rank(), expected_rank);
  Tensor t = full({2}, comm.rank(), DType::i64);
  sub->all_reduce(t, ReduceOp::sum);
  int64_t sum = 0;
  for (int r : members) sum += r;
  EXPECT_EQ(t.to_vector<int64_t>(), (std::vector<int64_t>{sum, sum}));
}

void check_all_collectives(Communicator& comm) {
  check_all_reduce(comm);
  check_all_gather(comm);
  check_reduce_scatter(comm);
  check_broadcast(comm);
  check_send_recv(comm);
  check_barrier_and_async_order(comm);
  check_split(comm);
}

}  // namespace strata::dist::testing
