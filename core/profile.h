// core/profile.h: the calibrated numbers of one machine type that turn a plan into time: how much
// of each link class's bandwidth NCCL achieves, NCCL's per-operation overheads, the attention
// kernel's CTA schedule, HBM bandwidth for memory-bound tasks, and how much compute
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

// Our attention kernel as a schedule of its CTAs (sim/attention_model.h). One CTA computes block_m
// queries of one (batch, head) over the key tiles of block_n keys that hold a visible key; CTAs are
// dispatched in grid order (query blocks longest first, then heads, then batch), breadth-first over
// the SMs, up to ctas_per_sm per SM, and a freed slot takes the next CTA. A CTA's work is
// cta_tiles + its tiles + masked_tiles per tile that applies the per-element mask, in tiles of
// tile_us; a CTA runs lone_speedup times faster alone on its SM than beside ctas_per_sm - 1 others
// (linear in between). CTAs that start at the same instant (a wave of equal CTAs, or a block's
// first) load their Q and first K/V tiles together: each of k such CTAs carries sync_tiles * k /
// (sms * ctas_per_sm) more work (a whole wave: sync_tiles); CTAs that start one by one, as a causal
// block's do once its first wave ends, carry almost none. Blocks of many keys run slower than that
// (their K and V no longer stay in L2): tile_us is multiplied by keys_factor at the block's key
// count (all its segments), or with keys_visited at the keys its CTAs visit (tiles x block_n, the
// mean over the CTAs weighted by their tiles: a causal block's long rows, a window's span, a
// document's length), linear in log(keys) between the points, the first's below it, the last's
// beyond it; empty = 1 everywhere.
struct KeysFactorPoint {
  double keys = 0;
  double factor = 1;
};
// A head_dim other than the profile's runs head_dim / the profile's head_dim as long, times its
// factor here (1 when not listed): the kernel's rate differs by head_dim (d 64 runs its matrix
// instructions at half the width). The kernel may also take another CTA tile there (the Hopper
// kernel: 192 queries at d 64; the mma.sync one: 128 keys): block_m, block_n (0: the profile's).
struct HeadDimFactor {
  std::int64_t head_dim = 0;
  double factor = 1;
  std::int64_t block_m = 0, block_n = 0;
};
struct AttentionKernelProfile {
  std::string kernel = "mma";  // the kernel fitted: mma (cuda/kernels/flash_fwd) or wgmma (_sm90)
  TimePs launch = 0;
  std::int64_t block_m = 128;   // queries per CTA
  std::int64_t block_n = 64;    // keys per tile
  std::int64_t head_dim = 128;  // tile_us holds at this head_dim; others scale by head_dim / it
  int sms = 132;
  int ctas_per_sm = 2;
  double tile_us = 3.1;       // one key tile of a CTA on a full SM
  double cta_tiles = 0;       // a CTA's fixed work (load Q, write O and LSE), in tiles
  double masked_tiles = 0;    // extra work of a tile that applies the per-element mask, in tiles
  double lone_speedup = 1.0;  // >= 1
  double sync_tiles = 0;      // extra work of a CTA in a wave that starts together, in tiles
  std::vector<KeysFactorPoint> keys_factor;
  bool keys_visited = false;  // keys_factor at the keys the CTAs visit, not the block's keys
  std::vector<HeadDimFactor> head_dim_factor;
  double softcap_factor = 1;    // a block with softcap takes this times as long (tanh per score)
  double fp16_factor = 1;       // a block in fp16 takes this times as long as in bf16
  double documents_factor = 1;  // a block of packed documents takes this times as long
  // Whether the kernel runs a block in clusters of two CTAs sharing each K/V tile's copy where it
  // can (the Hopper kernel from v11; sim::clustered: no causal mask, window or documents, head_dim
  // 128, an even number of query blocks); such a block takes cluster_factor times as long.
  bool cluster_pairs = false;
  double cluster_factor = 1;

  double keys_factor_at(double keys) const;
  double head_dim_scale(std::int64_t hd) const;    // (hd / head_dim) x its factor
  std::int64_t block_m_at(std::int64_t hd) const;  // the CTA tile at head_dim hd
  std::int64_t block_n_at(std::int64_t hd) const;
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

  AttentionKernelProfile attention;

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
  // The size delay of nccl_size_delay at the shape. With rate >= 0 (bytes/s; 0 = infinite) it is
  // made monotonic: raised where needed so that delay(x) + x / rate never falls as x grows (a
  // transfer's time, when its data moves at `rate`, never falls as its size grows). The
  // simulator passes the fastest rate the task's data could move at alone; rate < 0 gives the
  // table as interpolated.
  TimePs comm_size_delay(const CommShape& shape, double rate = -1) const;
  TimePs comm_overhead(const CommShape& shape, double rate = -1) const;  // >= 0
};

// Reads a profile file (top-level key `profile`); errors say FILE:LINE:COL: key 'K': why.
Expected<Profile> load_profile(const std::string& path);
Expected<Profile> parse_profile(const std::string& text, const std::string& name);
std::string profile_yaml(const Profile& p);
Status save_profile_yaml(const Profile& p, const std::string& path);

}  // namespace spattn::core
