// cuda/executor.h: runs a core::Plan on real GPUs with NCCL and spattn's own kernels, timing every
// task with CUDA events, and checks the output against the double-precision reference. One
// process drives every local GPU by default (rank r on GPU r); under mpirun (one process per GPU,
// any number of nodes) each process runs its own rank. No CUDA type leaks from this header.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/plan.h"
#include "core/status.h"
#include "core/timeline.h"

namespace spattn::cuda {

struct ExecOptions {
  int warmup = 2;
  int iterations = 10;
  // At least this much GPU time of warm-up and of timed iterations (milliseconds; 0: the counts
  // alone). The first warm-up run's time (the slowest rank's, across processes under mpirun, so
  // every process makes the same count) sets how many runs that takes (runs_for). A short plan
  // after two warm-up runs is timed on a GPU not yet at its steady clock: one H100 calibration
  // timed 4 heads x 2K tokens (64 CTAs, one wave, 50 us) 24% slower than 8 heads.
  double warmup_ms = 0;
  double timed_ms = 0;
  double watchdog_s = 120.0;  // an iteration that has not finished by then aborts NCCL, fails
  std::uint64_t seed = 1;     // inputs are core::input_value(seed, ...) rounded to the dtype
  bool check = true;
  int check_heads = 4;                  // sampled check: (batch, head) pairs ...
  int check_rows = 16;                  // ... and query rows of each
  double whole_check_max_flops = 2e10;  // whole reference on the CPU below this many FLOPs
  // Every rank of the plan on GPU 0, each with its own arena and streams, and every transfer a
  // device-to-device copy instead of NCCL: checks a plan of any world with the real kernels on one
  // GPU. The ranks share the GPU, so times and memory are not the plan's (ExecResult::device
  // says so).
  bool one_gpu = false;
};

struct ExecResult {
  std::string device;  // e.g. "4 x NVIDIA H200 (driver 580.159.04), NCCL 2.28.3"
  int world = 0;
  std::vector<int> local_ranks;      // ranks this process ran
  core::Timeline timeline;           // the median iteration, spans of local ranks' tasks
  std::vector<double> iteration_ms;  // every timed iteration: the slowest local rank
  double median_ms = 0;
  std::vector<Bytes> predicted_bytes;  // per local rank: the plan's arena (core::peak_memory)
  // Per local rank, from cudaMemGetInfo: the device memory the arena's allocation took, and all
  // the run took (the arena, NCCL's connection buffers made at the first send, workspace).
  std::vector<Bytes> arena_bytes;
  std::vector<Bytes> measured_bytes;
  // Numerical check (max |got - ref| / max |ref| over the rows compared).
  std::string check;  // "whole" or "N sampled rows" or "off"
  double out_error = 0, lse_error = 0, tolerance = 0;
  bool check_passed = true;
  // Per local rank: an FNV-1a hash of its output buffers' bytes (out, then lse), so two runs (one
  // process, or one per GPU under mpirun) can be compared bit for bit.
  std::vector<std::uint64_t> output_digest;
  // Host wall-clock seconds of the phases: setup (communicators, the arena, generating and copying
  // the inputs), the warm-up and timed iterations, and the numerical check.
  double setup_s = 0, run_s = 0, check_s = 0;
};

// How many runs of `run_ms` each make `target_ms`: at least `least`, at most kMaxRuns; `least`
// when nothing was measured.
inline constexpr int kMaxRuns = 2'000;
inline int runs_for(double target_ms, double run_ms, int least) {
  if (!(run_ms > 0) || !(target_ms > 0)) return least;
  const double n = target_ms / run_ms;
  return n >= kMaxRuns ? std::max(least, kMaxRuns)
                       : std::max(least, static_cast<int>(std::ceil(n)));
}

// Unavailable when no GPU / too few GPUs (without ExecOptions::one_gpu) / NCCL fails to start;
// Infeasible when the plan does not fit a GPU's free memory (with both numbers); Internal when a
// collective times out (the communicators are aborted first) or a kernel fails.
Expected<ExecResult> execute(const core::Plan& plan, const ExecOptions& options = {});

// Whether this process was started by mpirun with more than one process.
bool launched_by_mpi();

}  // namespace spattn::cuda
