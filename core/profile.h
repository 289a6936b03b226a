// core/profile.h: the calibrated numbers of one machine type that turn a plan into time: how much
// of each link class's bandwidth NCCL achieves, NCCL's per-operation overheads, the attention
// kernel's achieved TFLOP/s by shape, HBM bandwidth for memory-bound tasks, and how much compute
// slows while communication kernels hold SMs. Loaded from and saved to YAML (see
// experiments/profiles/h200_default.yaml for every key and where each number came from).
#pragma once

#include <string>
#include <vector>

#include "core/cluster.h"
#include "core/plan.h"
#include "core/status.h"
#include "core/units.h"

namespace spattn::core {

struct LinkClassProfile {
  double bandwidth_efficiency = 1.0;  // fraction of the link's bandwidth a transfer achieves
  TimePs latency = 0;                 // extra per message and hop of this class
};

// NCCL's time beyond launch + per_peer + bytes / bandwidth for one message size of one comm shape
// (core::comm_shape): the measured curve bends where NCCL changes protocol and channel count,
// which the straight line does not follow. Negative where NCCL beats the line.
struct CommDelayPoint {
  CommPattern pattern = CommPattern::kOneWay;
  int peers = 1;
  double bytes = 0;  // the shape's peer_bytes
  TimePs delay = 0;
};

// The attention rate of a block of `ctas` CTAs relative to a block that fills the GPU.
struct CtaFactorPoint {
  double ctas = 0;
  double factor = 1;
};

// Achieved attention throughput at a shape: `tokens` = sqrt(query tokens * key tokens) of a block.
struct ThroughputPoint {
  double tokens = 0;
  double tflops = 0;  // 1e12 FLOP/s, FLOP = 4 * head_dim * visible pairs * batch * heads
};

struct Profile {
  std::string name = "default";
  LinkClassProfile nvlink, pcie, network, cpu;  // indexed by LinkClass through link_class()

  // NCCL grouped send/recv: a task's data starts moving comm_overhead = launch + per_peer * (remote
  // peers it sends to + remote peers it receives from; several messages to one peer count once)
  // (+ all_to_all for an all-to-all) (+ its size delay) after all tasks of its collective are
  // ready.
  TimePs nccl_launch = 0;
  TimePs nccl_per_peer = 0;
  TimePs nccl_all_to_all = 0;
  // Added to a comm task's launch overhead (the total kept >= 0): the points of its pattern with
  // the nearest peer count (ties: fewer), interpolated linearly in log(bytes), clamped at the ends;
  // 0 when the pattern has none. Fitted by calibrate as what the line leaves over per point.
  std::vector<CommDelayPoint> nccl_size_delay;

  // Attention kernel: achieved TFLOP/s by shape (sorted by tokens, interpolated linearly in
  // log(tokens), clamped at the ends); `causal` falls back to `non_causal` when empty.
  // `causal_unmasked`: a block of a causal problem that masks no pair (its keys all precede its
  // queries, as most ring steps); falls back to `causal` when empty.
  std::vector<ThroughputPoint> attention_non_causal, attention_causal, attention_causal_unmasked;
  TimePs attention_launch = 0;
  // A block of few CTAs (query tiles of attention_block_m x heads x batch) fills part of the GPU:
  // its rate is the table's times factor(CTAs), interpolated linearly in log(CTAs) and clamped at
  // the ends; empty = 1 everywhere. The tables above then hold the rate of a full GPU.
  std::vector<CtaFactorPoint> attention_cta_factor;
  std::int64_t attention_block_m = 128;

  // Memory-bound tasks (merge, copy, fill, local sends): (bytes read + bytes written) / hbm.
  double hbm_bandwidth = 1e12;  // bytes/s
  TimePs memory_launch = 0;

  // Compute runs at 1 / (1 + compute_slowdown) of its speed while a comm task of its rank runs.
  double compute_slowdown = 0.0;
  // A collective whose ranks are running compute kernels when it is ready moves no data before
  // those kernels end (NCCL's kernels find no free SM until the running kernel's last blocks go).
  bool comm_waits_for_compute = false;

  // Host: issuing one task (its events and the launch) takes host_task, plus host_comm_call per
  // NCCL send or receive call of a comm task (self-sends included), plus host_dep for each
  // dependency it waits on explicitly (core::explicit_waits), on the issuing thread, and no task
  // starts before it is issued. Tasks are issued in core::issue_order, by one thread per node for
  // its ranks (host_one_process, the executor's default) or one per rank (mpirun).
  TimePs host_task = 0;
  TimePs host_dep = 0;
  TimePs host_comm_call = 0;  // per NCCL send or receive call of a comm task (ncclSend/ncclRecv)
  bool host_one_process = true;

  const LinkClassProfile& link_class(LinkClass c) const;
  TimePs comm_size_delay(const CommShape& shape) const;
  TimePs comm_overhead(const CommShape& shape) const;  // >= 0
  // Achieved FLOP/s (not TFLOP/s) at `tokens` for a block of a causal or non-causal problem;
  // `masked`: whether the block masks some of its pairs (only causal problems tell them apart).
  double attention_flops_per_s(double tokens, bool causal, bool masked = true) const;
  double attention_cta_factor_at(double ctas) const;  // 1 without a table
  // CTAs of a block of q_tokens queries over `heads` (x batch): query tiles of block_m x heads.
  double attention_ctas(std::int64_t q_tokens, std::int64_t heads) const;
};

// Reads a profile file (top-level key `profile`); errors say FILE:LINE:COL: key 'K': why.
Expected<Profile> load_profile(const std::string& path);
Expected<Profile> parse_profile(const std::string& text, const std::string& name);
std::string profile_yaml(const Profile& p);
Status save_profile_yaml(const Profile& p, const std::string& path);

}  // namespace spattn::core
