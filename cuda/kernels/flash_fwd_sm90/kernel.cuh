// cuda/kernels/flash_fwd_sm90/kernel.cuh: flash-attention forward for Hopper (sm_90a): the same
// function as flash_fwd/kernel.cuh, per (batch, head):
//   s = (q @ k.T) * scale;  s = softcap * tanh(s / softcap) if softcap;  s[~visible] = -inf
//   lse = torch.logsumexp(s, -1);  out = torch.softmax(s, -1) @ v   (rows with no visible key: 0,
//   -inf)
// on the same tile table (core::key_tiles) and masks, built the FlashAttention-3 way:
// - warp specialization: warpgroup 0 is the producer (setmaxnreg down to 24 registers; one thread
//   issues the bulk tensor copies of Q once and of K, V tile by tile into a ring of kStages slots
//   each, completing on mbarriers); warpgroups 1.. are consumers of 64 query rows each (two,
//   setmaxnreg up to 240; three at d 64, up to 160), which free a slot by arriving on its "empty"
//   mbarrier;
// - S = Q K^T and O += P V on wgmma: Q and K from shared memory, P from registers (the S
//   accumulator converted in place to the A-operand layout), V from shared memory (MN-major);
// - intra-warpgroup overlap: S(j+1) = Q K(j+1)^T is issued before O += P(j) V(j), and the
//   softmax of S(j+1) runs while P(j) V(j) is still in the tensor cores;
// - ping-pong between the consumers: a ring of named barriers orders their matrix issue, so one
//   warpgroup's softmax overlaps the others' matrix work;
// - online softmax, eager since v8 (O rescaled whenever a row's max rises; Sm90Traits::kLazyLog2
//   > 0 keeps a stale max while a tile raises it by at most 2^kLazyLog2), exp2 with the scale
//   folded in; since v9 that rescale runs under the next Q K^T (Sm90Traits::kRescaleInWindow).
// - O written through shared memory (each warpgroup's Q rows) by a bulk tensor store when out is
//   16-bit and 16-byte aligned (Sm90Traits::kStoreViaSmem), else straight from the registers.
// - clusters of two CTAs (adjacent query blocks) sharing each K and V tile's copy, where both read
//   the same tiles (Sm90Traits::kClusterM, chosen at launch: Sm90Params::cluster).
// CTAs are ordered longest causal rows first (the grid's x runs backwards over query blocks).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cuda/ptx>

#include "cuda/kernels/common/flash.cuh"
#include "cuda/kernels/flash_fwd_sm90/params.h"
#include "cuda/kernels/flash_fwd_sm90/traits.h"
#include "cuda/kernels/flash_fwd_sm90/wgmma.cuh"

namespace spattn::cuda::flash_sm90 {

using flash::FwdParams;
using flash::i64;
using flash::Segment;

__device__ __forceinline__ std::uint32_t smem_u32(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

// wgmma shared-memory descriptor of a 128-byte-swizzled operand starting at byte address `addr`
// (the swizzle pattern repeats every 1024 bytes and tiles start on such a boundary, so the base
// offset field is 0). lbo / sbo: leading and stride byte offsets (PTX ISA "matrix descriptor"):
// K-major: sbo = 1024 between groups of 8 rows, lbo unused (1); MN-major: lbo between 64-element
// column blocks, sbo = 1024 between groups of 8 rows of K.
// Kept as its two 32-bit words: an operand further on in shared memory is the low word plus the
// offset in 16-byte units (addresses stay below 2^18, so the 14-bit address field never carries),
// which keeps the address arithmetic between two wgmma issues to one 32-bit add.
struct Desc {
  std::uint32_t lo, hi;
  __device__ std::uint64_t at(std::uint32_t offset16) const {
    return static_cast<std::uint64_t>(hi) << 32 | (lo + offset16);
  }
};
__device__ __forceinline__ Desc make_desc(std::uint32_t addr, std::uint32_t lbo,
                                          std::uint32_t sbo) {
  return {((addr & 0x3ffff) >> 4) | ((lbo >> 4) & 0x3fff) << 16, ((sbo >> 4) & 0x3fff) | 1u << 30};
}

__device__ __forceinline__ void wait_barrier(std::uint64_t* bar, std::uint32_t parity) {
  while (!::cuda::ptx::mbarrier_try_wait_parity(bar, parity)) {
  }
}

// One box of the map (64 elements of head_dim by `rows` tokens) into shared memory at dst.
__device__ __forceinline__ void tma_load(void* dst, const CUtensorMap* map, int d0, int token,
                                         int head, int batch, std::uint64_t* bar) {
  const std::int32_t coords[4] = {d0, token, head, batch};
  ::cuda::ptx::cp_async_bulk_tensor(::cuda::ptx::space_cluster, ::cuda::ptx::space_global, dst, map,
                                    coords, bar);
}

__device__ __forceinline__ void prefetch_tensormap(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<std::uint64_t>(map)) : "memory");
}

__device__ __forceinline__ float fast_tanh(float x) {  // MUFU.TANH, max rel error ~2^-11
  float y;
  asm("tanh.approx.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

template <int kRegs>
__device__ __forceinline__ void regs_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void regs_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
// Named barriers 1..kConsumers (0 is __syncthreads), a ring: consumer c waits on 1 + c before
// issuing its matrix work and lets the next one go by arriving on 1 + (c + 1) % kConsumers; 256
// threads = the waiting and the arriving warpgroup. A consumer cannot pass twice before the next
// one waits: it first waits for the ring to come round.
__device__ __forceinline__ void pingpong_wait(int c) {
  asm volatile("bar.sync %0, 256;\n" ::"r"(1 + c) : "memory");
}
template <int kConsumers>
__device__ __forceinline__ void pingpong_pass(int c) {
  asm volatile("bar.arrive %0, 256;\n" ::"r"(1 + (c + 1) % kConsumers) : "memory");
}
// The 128 threads of one warpgroup on named barrier `id` (past the ping-pong ring's).
__device__ __forceinline__ void warpgroup_sync(int id) {
  asm volatile("bar.sync %0, 128;\n" ::"r"(id) : "memory");
}

// The (segment, key tile) sequence of a CTA over its tile table, skipping fully masked tiles;
// the producer and the consumers walk the same sequence. The segment's bounds are held in
// registers: the loop reads the table (shared memory) only when it enters a segment.
struct Cursor {
  const int* table;  // [segment][kTableInts]: lo, hi, full_lo, full_hi, whole
  int num_segments;
  int seg = -1, tile = 0, hi = 0, full_lo = 0, full_hi = 0;
  __device__ bool enter() {  // first tile of the next segment that has one
    while (++seg < num_segments) {
      const int* t = table + seg * 8;
      tile = t[0];
      hi = t[1];
      if (tile < hi) {
        full_lo = t[2];
        full_hi = t[3];
        return true;
      }
    }
    return false;
  }
  __device__ bool advance() { return ++tile < hi || enter(); }
  __device__ bool full() const {  // visible to every query of the block, 128 real keys
    return tile >= full_lo && tile < full_hi;
  }
};

template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads, 1)
    flash_fwd_sm90_kernel(const __grid_constant__ Sm90Params P) {
  using T = typename Tr::T;
  constexpr int D = Tr::kHeadDim, BM = Tr::kBlockM, BN = Tr::kBlockN, S = Tr::kStages;
  const FwdParams& p = P.fwd;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = reinterpret_cast<unsigned char*>(
      (reinterpret_cast<std::uintptr_t>(smem_raw) + 1023) & ~std::uintptr_t{1023});
  std::uint64_t* bars = reinterpret_cast<std::uint64_t*>(smem + Tr::kBarOffset);
  std::uint64_t* q_full = bars;
  std::uint64_t* k_full = bars + 1;
  std::uint64_t* k_empty = bars + 1 + S;
  std::uint64_t* v_full = bars + 1 + 2 * S;
  std::uint64_t* v_empty = bars + 1 + 3 * S;
  int* table = reinterpret_cast<int*>(smem + Tr::kTableOffset);

  const int m_block = gridDim.x - 1 - blockIdx.x;  // the longest causal rows first
  const int h = blockIdx.y;
  const int b = blockIdx.z;
  const int tid = threadIdx.x;
  const i64 q0 = static_cast<i64>(m_block) * BM;
  const int rows_valid = static_cast<int>(min(static_cast<i64>(BM), p.nq - q0));
  const i64 kv_head = (p.q_head_start + h) / p.group;

  if (tid == 0) {
    // The copy engine reads each tensor map before its first copy: fetch them now, under the
    // barriers' init and the table build, rather than on the first tile's path.
    prefetch_tensormap(&P.q);
    for (int s = 0; s < p.num_segments; ++s) {
      prefetch_tensormap(&P.k[s]);
      prefetch_tensormap(&P.v[s]);
    }
    if (Tr::kStoreViaSmem && P.o_tma) prefetch_tensormap(&P.o);
    ::cuda::ptx::mbarrier_init(q_full, 1);
    for (int s = 0; s < S; ++s) {
      ::cuda::ptx::mbarrier_init(k_full + s, 1);
      ::cuda::ptx::mbarrier_init(v_full + s, 1);
      // A slot is free once every consumer warp of the cluster (both CTAs when they share it)
      // has read it.
      ::cuda::ptx::mbarrier_init(k_empty + s, Tr::kConsumerWarps * P.cluster);
      ::cuda::ptx::mbarrier_init(v_empty + s, Tr::kConsumerWarps * P.cluster);
    }
    ::cuda::ptx::fence_mbarrier_init(::cuda::ptx::sem_release, ::cuda::ptx::scope_cluster);
    // Q needs no tile table: its copy flies while the tables are built.
    ::cuda::ptx::mbarrier_arrive_expect_tx(::cuda::ptx::sem_release, ::cuda::ptx::scope_cta,
                                           ::cuda::ptx::space_shared, q_full, Tr::kQBytes);
#pragma unroll
    for (int a = 0; a < Tr::kAtoms; ++a)
      tma_load(smem + a * BM * 128, &P.q, a * 64, static_cast<int>(q0), h, b, q_full);
  }
  flash::RowDoc* row_doc = reinterpret_cast<flash::RowDoc*>(smem + Tr::kRowDocOffset);
  flash::build_tables<BN, BM, Tr::kThreads, Tr::kTableInts>(p, q0, rows_valid, table, row_doc, tid);
  // A cluster's CTAs copy into each other's slots and arrive on each other's barriers: each
  // CTA's barriers are initialised before the other's first copy (and, at the end, neither leaves
  // while the other may still do so).
  const bool shared_kv = Tr::kMulticast && P.cluster == 2;
  const std::uint32_t cta_rank = shared_kv ? ::cuda::ptx::get_sreg_cluster_ctarank() : 0;
  auto cluster_sync = [&]() {
    ::cuda::ptx::barrier_cluster_arrive(::cuda::ptx::sem_release);
    ::cuda::ptx::barrier_cluster_wait(::cuda::ptx::sem_acquire);
  };
  if (shared_kv) cluster_sync();

  // Producer: one thread issues every K and V copy (Q's went out with the barriers' init).
  auto producer = [&]() {
    constexpr std::uint32_t kKVTx = Tr::kKVBytes;
    int ks = 0, vs = 0;
    std::uint32_t kph = 0, vph = 0;
    auto load = [&](const Cursor& c, bool is_k, int& slot, std::uint32_t& phase) {
      std::uint64_t* full = (is_k ? k_full : v_full) + slot;
      wait_barrier((is_k ? k_empty : v_empty) + slot, phase ^ 1);  // the slot's last use ended
      ::cuda::ptx::mbarrier_arrive_expect_tx(::cuda::ptx::sem_release, ::cuda::ptx::scope_cta,
                                             ::cuda::ptx::space_shared, full, kKVTx);
      const CUtensorMap* map = is_k ? &P.k[c.seg] : &P.v[c.seg];
      unsigned char* dst = smem + (is_k ? Tr::kKOffset : Tr::kVOffset) + slot * Tr::kKVBytes;
      const int hk = static_cast<int>(kv_head - p.seg[c.seg].kv_head_start);
      if (shared_kv) {  // this CTA's atom of the tile, into both CTAs' slots
        const int a = static_cast<int>(cta_rank);
        const std::int32_t coords[4] = {a * 64, c.tile * BN, hk, static_cast<int>(b)};
        ::cuda::ptx::cp_async_bulk_tensor(::cuda::ptx::space_cluster, ::cuda::ptx::space_global,
                                          dst + a * BN * 128, map, coords, full,
                                          static_cast<std::uint16_t>(0x3));
      } else {
#pragma unroll
        for (int a = 0; a < Tr::kAtoms; ++a)
          tma_load(dst + a * BN * 128, map, a * 64, c.tile * BN, hk, b, full);
      }
      if (++slot == S) {
        slot = 0;
        phase ^= 1;
      }
    };
    // Order of use by the consumers: K(0), then K(j + 1) before V(j).
    Cursor c{table, p.num_segments};
    bool have = c.enter();
    if (have) load(c, true, ks, kph);
    while (have) {
      const Cursor cur = c;
      have = c.advance();
      if (have) load(c, true, ks, kph);
      load(cur, false, vs, vph);
    }
  };

  auto consumer = [&]() {
    // Consumer warpgroup cw: query rows [64 cw, 64 cw + 64) of the block; this thread holds rows
    // r0 and r0 + 8 (the wgmma accumulator layout), columns 8 j + 2 (lane % 4) + {0, 1}.
    // Warp-uniform as far as the compiler can see (a broadcast), so that what derives from it
    // (the Q descriptor) lives in uniform registers.
    const int cw = __shfl_sync(0xffffffffu, tid / 128, 0) - 1;
    const int warp = (tid / 32) % 4, lane = tid % 32;
    const int r0 = cw * 64 + warp * 16 + lane / 4;

    const std::uint32_t sq = smem_u32(smem), sk = sq + Tr::kKOffset, sv = sq + Tr::kVOffset;
    // Q rows of this warpgroup, k-step kk: atom kk / 4, 32 bytes per k16 inside the 128-byte row.
    const Desc q_desc = make_desc(sq + cw * 64 * 128, 16, 1024);
    const Desc k_desc = make_desc(sk, 16, 1024);
    const Desc v_desc = make_desc(sv, BN * 128, 1024);
    auto q_at = [&](int kk) -> std::uint64_t {
      return q_desc.at(((kk / 4) * BM * 128 + (kk % 4) * 32) / 16);
    };
    auto k_at = [&](int slot, int kk) -> std::uint64_t {
      return k_desc.at(slot * (Tr::kKVBytes / 16) + ((kk / 4) * BN * 128 + (kk % 4) * 32) / 16);
    };
    auto v_at = [&](int slot, int kk) -> std::uint64_t {  // keys [16 kk, 16 kk + 16)
      return v_desc.at(slot * (Tr::kKVBytes / 16) + kk * 16 * 128 / 16);
    };

    float o[D / 2];
    float s[BN / 2];
    std::uint32_t pa[Tr::kPSteps][4];
    float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};
#pragma unroll
    for (int i = 0; i < D / 2; ++i) o[i] = 0.f;

    const float sl2 = p.score_log2;
    // s = softcap(s); s[~visible] = -inf; then the online softmax: s <- exp2(s sl2 - m sl2) and
    // alpha = the factor O and l take for the new max (1 when no row of the warp moved it).
    auto softmax = [&](const Cursor& c, float(&alpha)[2]) -> bool {
      if (p.softcap > 0.f) {
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) s[i] = p.softcap * fast_tanh(s[i] * p.cap_in);
      }
      if (!c.full()) {
        const Segment& sg = p.seg[c.seg];
        const i64 j0 = static_cast<i64>(c.tile) * BN;
        const i64 kmin = sg.start + sg.stride * j0;
        const int kst = static_cast<int>(sg.stride);
        const int n_valid = static_cast<int>(min(static_cast<i64>(BN), sg.nk - j0));
        const bool docs = p.num_doc_bounds > 0;
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int row = r0 + hr * 8;
          const int rel = static_cast<int>(p.q_start + p.q_stride * (q0 + row) - kmin);
          const flash::Columns v = flash::visible_columns(p, sg.joint, rel, kst, n_valid,
                                                          docs ? row_doc + row : nullptr);
#pragma unroll
          for (int j = 0; j < BN / 8; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int col = j * 8 + (lane & 3) * 2 + e;
              if (col < v.lo || col >= v.hi) s[4 * j + 2 * hr + e] = -INFINITY;
            }
        }
      }
      bool moved = false;
      float msc[2];
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const float m_old = row_max[hr];
        float part[4] = {m_old, -INFINITY, -INFINITY, -INFINITY};  // 4 chains, not one of BN / 4
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
          part[j % 4] = fmaxf(part[j % 4], fmaxf(s[4 * j + 2 * hr], s[4 * j + 2 * hr + 1]));
        float mx = fmaxf(fmaxf(part[0], part[1]), fmaxf(part[2], part[3]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        // keep is false when m_old is -inf and mx finite ((mx - m_old) = inf) or both -inf (NaN).
        const bool keep = (mx - m_old) * sl2 <= Tr::kLazyLog2;
        const float m_new = keep ? m_old : mx;
        const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing visible yet
        alpha[hr] =
            keep ? 1.f : (m_old == -INFINITY ? 0.f : flash::fast_exp2((m_old - m_use) * sl2));
        moved |= !keep;
        row_max[hr] = m_new;
        msc[hr] = m_use * sl2;
      }
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float part[4] = {row_sum[hr] * alpha[hr], 0.f, 0.f, 0.f};
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float& x = s[4 * j + 2 * hr + e];
            x = flash::fast_exp2(fmaf(x, sl2, -msc[hr]));
            part[(2 * j + e) % 4] += x;
          }
        row_sum[hr] = (part[0] + part[1]) + (part[2] + part[3]);
      }
      return __any_sync(0xffffffffu, moved);
    };
    // P as the A operand of P V: k-step kk takes S columns [16 kk, 16 kk + 16), i.e. the
    // accumulator's 8-column groups 2 kk and 2 kk + 1 (the mma.sync A fragment, per warp).
    auto pack_p = [&]() {
#pragma unroll
      for (int kk = 0; kk < Tr::kPSteps; ++kk) {
        pa[kk][0] = flash::pack2<T>(s[8 * kk + 0], s[8 * kk + 1]);
        pa[kk][1] = flash::pack2<T>(s[8 * kk + 2], s[8 * kk + 3]);
        pa[kk][2] = flash::pack2<T>(s[8 * kk + 4], s[8 * kk + 5]);
        pa[kk][3] = flash::pack2<T>(s[8 * kk + 6], s[8 * kk + 7]);
      }
    };
    auto issue_s = [&](int slot) {
#pragma unroll
      for (int kk = 0; kk < Tr::kKSteps; ++kk)
        wgmma_ss_n128<T>(s, q_at(kk), k_at(slot, kk), kk > 0);
      wgmma_commit();
    };
    auto issue_pv = [&](int slot) {
#pragma unroll
      for (int kk = 0; kk < Tr::kPSteps; ++kk) {
        if constexpr (D == 128) {
          wgmma_rs_n128<T>(o, pa[kk], v_at(slot, kk), 1);
        } else {
          wgmma_rs_n64<T>(o, pa[kk], v_at(slot, kk), 1);
        }
      }
      wgmma_commit();
    };
    auto release = [&](std::uint64_t* empty) {
      if (lane == 0) {
        ::cuda::ptx::mbarrier_arrive(empty);
        if (shared_kv)  // the other CTA's copy also lands in this slot
          ::cuda::ptx::mbarrier_arrive(
              ::cuda::ptx::sem_release, ::cuda::ptx::scope_cluster, ::cuda::ptx::space_cluster,
              static_cast<std::uint64_t*>(__cluster_map_shared_rank(empty, cta_rank ^ 1)));
      }
    };

    wait_barrier(q_full, 0);
    Cursor c{table, p.num_segments};
    int ks = 0, vs = 0;
    std::uint32_t kph = 0, vph = 0;
    auto next_slot = [](int& slot, std::uint32_t& phase) {
      if (++slot == S) {
        slot = 0;
        phase ^= 1;
      }
    };
    if (c.enter()) {
      if (cw == Tr::kConsumers - 1) pingpong_pass<Tr::kConsumers>(cw);  // consumer 0 goes first
      float alpha[2];
      // Tile 0: S = Q K(0)^T, softmax, P.
      wait_barrier(k_full + ks, kph);
      pingpong_wait(cw);
      wgmma_fence();
      issue_s(ks);
      pingpong_pass<Tr::kConsumers>(cw);
      wgmma_wait<0>();
      fence_regs(s);
      release(k_empty + ks);
      next_slot(ks, kph);
      softmax(c, alpha);
      pack_p();
      // Tile j: S(j) = Q K(j)^T and O += P(j-1) V(j-1) in flight together; softmax of S(j) while
      // P V runs; then O rescaled and P(j) packed.
      bool moved = false;  // O to be rescaled by alpha before the next P V
      auto rescale = [&]() {
        if (moved) {
#pragma unroll
          for (int j = 0; j < D / 8; ++j) {
            o[4 * j + 0] *= alpha[0];
            o[4 * j + 1] *= alpha[0];
            o[4 * j + 2] *= alpha[1];
            o[4 * j + 3] *= alpha[1];
          }
        }
      };
      while (c.advance()) {
        wait_barrier(k_full + ks, kph);
        pingpong_wait(cw);
        wgmma_fence();
        issue_s(ks);
        if constexpr (Tr::kRescaleInWindow) {
          rescale();
          wgmma_fence();
        }
        wait_barrier(v_full + vs, vph);
        issue_pv(vs);
        pingpong_pass<Tr::kConsumers>(cw);
        wgmma_wait<1>();  // S(j) done
        fence_regs(s);
        release(k_empty + ks);
        next_slot(ks, kph);
        moved = softmax(c, alpha);
        wgmma_wait<0>();  // P(j-1) V(j-1) done
        fence_regs(o);
#pragma unroll
        for (int kk = 0; kk < Tr::kPSteps; ++kk) fence_regs(pa[kk]);
        release(v_empty + vs);
        next_slot(vs, vph);
        if constexpr (!Tr::kRescaleInWindow) rescale();
        pack_p();
      }
      wait_barrier(v_full + vs, vph);
      if constexpr (Tr::kRescaleInWindow) rescale();
      wgmma_fence();
      issue_pv(vs);
      wgmma_wait<0>();
      fence_regs(o);
      release(v_empty + vs);
      if (cw == 0) pingpong_wait(0);  // takes the last consumer's last pass: none left pending
    }

    // out = o / l; lse = m + log(l); rows with l == 0 saw no key: out 0, lse -inf.
    float inv[2];
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float l = row_sum[hr];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      inv[hr] = l > 0.f ? 1.f / l : 0.f;
      const int row = r0 + hr * 8;
      if (p.lse != nullptr && (lane & 3) == 0 && row < rows_valid) {
        p.lse[b * p.lse_batch_stride + (q0 + row) * p.lse_token_stride + h * p.lse_head_stride] =
            l > 0.f ? row_max[hr] * p.score_to_nat + logf(l) : -INFINITY;
      }
    }
    if (Tr::kStoreViaSmem && P.o_tma) {
      // O goes through this warpgroup's own Q rows (its last Q K^T is done) in Q's layout, the
      // 128-byte swizzle (16-byte chunk c of row r at chunk c ^ (r % 8): the warp's 8 rows x 16
      // bytes of a store fall on 32 distinct banks), then out by one bulk tensor copy per atom.
      unsigned char* oq = smem + cw * 64 * 128;
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const int row = warp * 16 + lane / 4 + hr * 8;  // of this warpgroup's 64
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
          unsigned char* at =
              oq + (j / 8) * BM * 128 + row * 128 + ((j % 8) ^ (row % 8)) * 16 + (lane & 3) * 4;
          *reinterpret_cast<std::uint32_t*>(at) =
              flash::pack2<T>(o[4 * j + 2 * hr] * inv[hr], o[4 * j + 2 * hr + 1] * inv[hr]);
        }
      }
      ::cuda::ptx::fence_proxy_async(::cuda::ptx::space_shared);  // visible to the copy engine
      warpgroup_sync(Tr::kConsumers + 1 + cw);
      if (tid % 128 == 0 && q0 + cw * 64 < p.nq) {  // rows past nq are clipped by the copy
#pragma unroll
        for (int a = 0; a < Tr::kAtoms; ++a) {
          const std::int32_t coords[4] = {a * 64, static_cast<int>(q0) + cw * 64, h, b};
          ::cuda::ptx::cp_async_bulk_tensor(::cuda::ptx::space_global, ::cuda::ptx::space_shared,
                                            &P.o, coords, oq + a * BM * 128);
        }
        ::cuda::ptx::cp_async_bulk_commit_group();
        ::cuda::ptx::cp_async_bulk_wait_group_read(::cuda::ptx::n32_t<0>{});  // smem stays ours
      }
      return;
    }
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int row = r0 + hr * 8;
      if (row >= rows_valid) continue;
      const i64 base =
          b * p.out_batch_stride + (q0 + row) * p.out_token_stride + h * p.out_head_stride;
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        const int col = j * 8 + (lane & 3) * 2;
        const float v0 = o[4 * j + 2 * hr] * inv[hr], v1 = o[4 * j + 2 * hr + 1] * inv[hr];
        if (p.out_f32) {
          *reinterpret_cast<float2*>(static_cast<float*>(p.out) + base + col) = make_float2(v0, v1);
        } else {
          *reinterpret_cast<std::uint32_t*>(static_cast<T*>(p.out) + base + col) =
              flash::pack2<T>(v0, v1);
        }
      }
    }
  };

  // Each warpgroup's role is one branch of one if/else, so setmaxnreg applies (HOPPER.md).
  if (tid < 128) {  // producer warpgroup
    regs_dec<Tr::kProducerRegs>();
    if (tid == 0) producer();
  } else {
    regs_inc<Tr::kConsumerRegs>();
    consumer();
  }
  if (shared_kv) cluster_sync();
}

}  // namespace spattn::cuda::flash_sm90
