// The handler only stores the signal number: everything else happens on the training thread.
#include "launch/signals.h"

#include <atomic>
#include <csignal>

namespace strata::launch {
namespace {

std::atomic<int> g_stop_signal{0};  // written by the handler (lock-free, async-signal-safe)
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int sig) { g_stop_signal.store(sig, std::memory_order_relaxed); }

}  // namespace

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // interrupted reads and writes (checkpoint I/O) carry on
  sigaction(SIGUSR1, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int stop_signal() { return g_stop_signal.load(std::memory_order_relaxed); }

}  // namespace strata::launch
