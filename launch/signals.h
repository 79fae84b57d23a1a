// Preemption: SIGUSR1 (Slurm's --signal warning) and SIGTERM set a flag that the training loop
// reads at each step boundary, so that it checkpoints and exits instead of dying mid-step.
#pragma once

namespace strata::launch {

/// The exit code of a run that stopped on a signal after checkpointing (EX_TEMPFAIL): the
/// job script turns it into a requeue, and the next run continues with --resume auto.
inline constexpr int kPreemptedExitCode = 75;

/// Installs the handlers for SIGUSR1 and SIGTERM (idempotent).
void install_stop_signals();
/// Whether a stop signal has arrived; the signal's number, or 0.
int stop_signal();

}  // namespace strata::launch
