// cuda/tools/flash_fwd_v0.cuh: the kernel before kernel-tune (baseline for attn_tune only), a copy
// of the former cuda/kernels/flash_fwd/kernel.cuh: flash-attention forward (FlashAttention-2
// scheme) with mma.sync m16n8k16, ldmatrix and cp.async, for the masks of core/problem.h. In
// PyTorch terms, per (batch, head):
//   s = (q @ k.T) * scale;  s = softcap * tanh(s / softcap) if softcap;  s[~visible] = -inf
//   lse = torch.logsumexp(s, -1);  out = torch.softmax(s, -1) @ v   (rows with no visible key: 0,
//   -inf)
// One CTA: kBlockM queries of one (batch, head), looping over the key tiles of the segments that
// the masks leave (fully masked tiles are skipped, fully visible ones skip the per-element mask).
// Pipeline, kStages = 1 (single-buffered K and V, as FlashAttention-2): the load of V(j) overlaps
// S = Q K(j)^T, the load of K(j+1) overlaps the softmax and O += P V(j). kStages = 2: K(j+1) and
// V(j+1) load into the other buffer during the whole of iteration j.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "cuda/kernels/flash_fwd/params.h"
#include "cuda/kernels/flash_fwd/traits.h"

namespace spattn::cuda::flash_v0 {
using flash::FwdParams;
using flash::FwdTraits;
using flash::Segment;

using i64 = std::int64_t;

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool pred) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int bytes = pred ? 16 : 0;  // 0: zero-fill, nothing read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>  // wait until at most kPending committed groups are still in flight
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* smem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

// c += a (16x16, row) * b (16x8, col), fp32 accumulators.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const std::uint32_t (&a)[4],
                                          std::uint32_t b0, std::uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

template <typename T>
__device__ __forceinline__ std::uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<std::uint32_t*>(&h);
  } else {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<std::uint32_t*>(&h);
  }
}

__device__ __forceinline__ float fast_exp2(float x) {  // exp2(-inf) = 0
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Element offset of (row, 16-byte chunk) in a tile of rows of kChunks chunks: the chunk index is
// XORed with row % 8 so the 8 rows an ldmatrix phase reads hit 8 different bank groups.
template <int kChunks>
__device__ __forceinline__ int swz(int row, int chunk) {
  return row * kChunks * 8 + ((chunk ^ (row & 7)) << 3);
}

__device__ __forceinline__ i64 floor_div(i64 a, i64 b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// Key tiles [lo, hi) of segment s that hold a key visible to some query with global position in
// [qmin, qmax]; image keys are monotone in j, so that set is one range.
template <int kBlockN>
__device__ __forceinline__ void segment_tiles(const FwdParams& p, const Segment& sg, i64 qmin,
                                              i64 qmax, i64& lo, i64& hi) {
  i64 jlo = 0, jhi = sg.nk - 1;
  if (!sg.joint) {
    if (p.causal) jhi = min(jhi, floor_div(qmax - sg.start, sg.stride));
    if (p.window_right >= 0) jhi = min(jhi, floor_div(qmax + p.window_right - sg.start, sg.stride));
    if (p.window_left >= 0)
      jlo = max(jlo, -floor_div(-(qmin - p.window_left - sg.start), sg.stride));
  }
  if (jlo > jhi) {
    lo = hi = 0;
    return;
  }
  lo = jlo / kBlockN;
  hi = jhi / kBlockN + 1;
}

template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads, Tr::kMinBlocks)
    flash_fwd_kernel(const __grid_constant__ FwdParams p) {
  using T = typename Tr::T;
  constexpr int D = Tr::kHeadDim, BM = Tr::kBlockM, BN = Tr::kBlockN, MT = Tr::kMTiles,
                NT = Tr::kNTiles, DT = Tr::kDTiles, KS = Tr::kKSteps, CH = Tr::kChunks,
                NTH = Tr::kThreads;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sK = sQ + BM * D;      // [kStages][BN * D]
  T* sV = sK + 1 * BN * D;  // [kStages][BN * D]
  constexpr bool kTwoStage = 1 == 2;

  const int m_block = gridDim.x - 1 - blockIdx.x;  // the longest causal rows first
  const int h = blockIdx.y;
  const int b = blockIdx.z;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const i64 q0 = static_cast<i64>(m_block) * BM;
  const int rows_valid = static_cast<int>(min(static_cast<i64>(BM), p.nq - q0));
  const i64 qmin = p.q_start + p.q_stride * q0;
  const i64 qmax = p.q_start + p.q_stride * (q0 + rows_valid - 1);
  const i64 kv_head = (p.q_head_start + h) / p.group;

  // Loader: thread tid copies 16-byte chunk tid % CH of rows tid / CH + i * kRowStep; kRowStep is a
  // multiple of 8, so the swizzled shared offset only advances by whole rows.
  constexpr int kRowStep = NTH / CH;
  static_assert(kRowStep % 8 == 0, "rows per loader pass keep row % 8 fixed");
  const int ld_row = tid / CH;
  const int ld_smem = swz<CH>(ld_row, tid % CH);
  auto load_rows = [&](T* dst, const T* g, i64 ts, int rows, int n_valid) {
    const T* src = g + ld_row * ts + (tid % CH) * 8;
    const i64 step = kRowStep * ts;
#pragma unroll
    for (int i = 0; i < rows / kRowStep; ++i) {
      const bool ok = ld_row + i * kRowStep < n_valid;
      cp_async_16(dst + ld_smem + i * kRowStep * D, ok ? src : g, ok);
      src += step;
    }
    cp_async_commit();
  };

  // Q tile -> shared memory (rows past nq zero-filled).
  load_rows(sQ,
            static_cast<const T*>(p.q) + b * p.q_batch_stride + h * p.q_head_stride +
                q0 * p.q_token_stride,
            p.q_token_stride, BM, rows_valid);

  // Tile cursor over (segment, key tile), skipping fully masked tiles.
  int seg = -1;
  i64 tile = 0, tile_end = 0;
  auto advance = [&]() -> bool {
    ++tile;
    while (tile >= tile_end) {
      if (++seg >= p.num_segments) return false;
      flash_v0::segment_tiles<BN>(p, p.seg[seg], qmin, qmax, tile, tile_end);
    }
    return true;
  };
  // Loads rows [j0, j0 + BN) of a segment's K or V (rows past nk zero-filled, so P V stays finite).
  auto load_kv = [&](T* dst, const void* base, i64 bs, i64 ts, i64 hs) {
    const Segment& sg = p.seg[seg];
    const i64 j0 = tile * BN;
    const T* g = static_cast<const T*>(base) + b * bs + (kv_head - sg.kv_head_start) * hs + j0 * ts;
    load_rows(dst, g, ts, BN, static_cast<int>(min(static_cast<i64>(BN), sg.nk - j0)));
  };
  auto load_k = [&](int stage) {
    const Segment& sg = p.seg[seg];
    load_kv(sK + stage * BN * D, sg.k, sg.k_batch_stride, sg.k_token_stride, sg.k_head_stride);
  };
  auto load_v = [&](int stage) {
    const Segment& sg = p.seg[seg];
    load_kv(sV + stage * BN * D, sg.v, sg.v_batch_stride, sg.v_token_stride, sg.v_head_stride);
  };

  float o[MT][DT][4];
  float row_max[MT][2], row_sum[MT][2];
#pragma unroll
  for (int mi = 0; mi < MT; ++mi) {
#pragma unroll
    for (int dt = 0; dt < DT; ++dt)
#pragma unroll
      for (int r = 0; r < 4; ++r) o[mi][dt][r] = 0.f;
    row_max[mi][0] = row_max[mi][1] = -INFINITY;
    row_sum[mi][0] = row_sum[mi][1] = 0.f;
  }
  const int warp_row0 = warp * Tr::kRowsPerWarp;
  // ldmatrix addresses. With swz(), the chunk of (row, 2k + c) is (2k + c) ^ (row % 8); rows
  // advance in multiples of 8, so row % 8 = lane % 8 and the element offset of k-step k is
  // lane_off ^ (k << 4), plus whole 16-row blocks: one register per operand, not one per step.
  const int r8 = lane & 7;
  const int q_off = (warp_row0 + (lane & 15)) * D + (((lane >> 4) ^ r8) << 3);
  const int k_off = (r8 + ((lane >> 4) << 3)) * D + ((((lane >> 3) & 1) ^ r8) << 3);
  const int v_off = (r8 + ((lane >> 3) & 1) * 8) * D + (((lane >> 4) ^ r8) << 3);
  std::uint32_t q_frag[Tr::kQInRegs ? KS : 1][4];

  int stage = 0;
  bool have = advance();
  if (have) {
    load_k(0);
    if constexpr (kTwoStage) load_v(0);
  }
  if constexpr (Tr::kQInRegs) {
    cp_async_wait<0>();
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < KS; ++kk) ldmatrix_x4(q_frag[kk], sQ + (q_off ^ (kk << 4)));
  }

  while (have) {
    const Segment& sg = p.seg[seg];  // the current tile's segment and first key
    const i64 j0 = tile * BN;
    const T* sKs = sK + stage * BN * D;
    const T* sVs = sV + stage * BN * D;
    bool next = false;
    if constexpr (kTwoStage) {
      cp_async_wait<1>();  // Q and K(tile) landed; V(tile) may still be in flight
      __syncthreads();     // ... for every thread; every warp is done with the other stage
      next = advance();
      if (next) {
        load_k(stage ^ 1);
        load_v(stage ^ 1);
      }
    } else {
      cp_async_wait<0>();  // K(tile) (and Q) landed
      __syncthreads();     // ... for every thread; and every warp is done reading V(previous)
      load_v(0);
    }

    // s = q @ k.T over this key tile.
    float s[MT][NT][4];
#pragma unroll
    for (int mi = 0; mi < MT; ++mi)
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int r = 0; r < 4; ++r) s[mi][nt][r] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KS; ++kk) {
      std::uint32_t a[MT][4];
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
        if constexpr (Tr::kQInRegs) {
#pragma unroll
          for (int r = 0; r < 4; ++r) a[mi][r] = q_frag[kk][r];
        } else {
          ldmatrix_x4(a[mi], sQ + (q_off ^ (kk << 4)) + mi * 16 * D);
        }
      }
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        std::uint32_t bk[4];
        ldmatrix_x4(bk, sKs + (k_off ^ (kk << 4)) + np * 16 * D);
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          mma_16816<T>(s[mi][2 * np], a[mi], bk[0], bk[1]);
          mma_16816<T>(s[mi][2 * np + 1], a[mi], bk[2], bk[3]);
        }
      }
    }

    // s = softcap * tanh(s * scale / softcap)
    if (p.softcap > 0.f) {
#pragma unroll
      for (int mi = 0; mi < MT; ++mi)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
#pragma unroll
          for (int r = 0; r < 4; ++r) s[mi][nt][r] = p.softcap * tanhf(s[mi][nt][r] * p.cap_in);
    }

    // s[~visible] = -inf, only where the tile is not fully visible to the whole query block.
    {
      const i64 jn = min(j0 + BN, sg.nk) - 1;  // last real key of the tile
      bool full = j0 + BN <= sg.nk;
      const i64 kmin = sg.start + sg.stride * j0, kmax = sg.start + sg.stride * jn;
      if (!sg.joint) {
        if (p.causal && kmax > qmin) full = false;
        if (p.window_right >= 0 && kmax > qmin + p.window_right) full = false;
        if (p.window_left >= 0 && kmin < qmax - p.window_left) full = false;
      }
      if (!full) {
        // Positions relative to the tile's first key fit in int (can_implement bounds them).
        const int kst = static_cast<int>(sg.stride);
        const int n_valid = static_cast<int>(min(static_cast<i64>(BN), sg.nk - j0));
        const int wl = static_cast<int>(p.window_left), wr = static_cast<int>(p.window_right);
#pragma unroll
        for (int mi = 0; mi < MT; ++mi)
#pragma unroll
          for (int hr = 0; hr < 2; ++hr) {
            const int row = warp_row0 + mi * 16 + (lane >> 2) + hr * 8;
            // rel = qpos - kmin; key column c is at kmin + kst * c
            const int rel = static_cast<int>(p.q_start + p.q_stride * (q0 + row) - kmin);
#pragma unroll
            for (int nt = 0; nt < NT; ++nt)
#pragma unroll
              for (int c = 0; c < 2; ++c) {
                const int col = nt * 8 + (lane & 3) * 2 + c;
                bool vis = col < n_valid;
                if (!sg.joint) {
                  const int diff = rel - kst * col;  // qpos - kpos
                  if (p.causal && diff < 0) vis = false;
                  if (wr >= 0 && diff < -wr) vis = false;
                  if (wl >= 0 && diff > wl) vis = false;
                }
                if (!vis) s[mi][nt][hr * 2 + c] = -INFINITY;
              }
          }
      }
    }

    if constexpr (kTwoStage) {
      if (next) {
        cp_async_wait<2>();  // V(tile) landed; K, V of the next tile may still be in flight
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();
    } else {
      cp_async_wait<0>();  // V(tile) landed
      __syncthreads();     // ... for every thread; every warp is done reading K(tile)
      next = advance();
      if (next) load_k(0);
    }

    // Online softmax: m = max(m, rowmax(s)); o *= exp(m_old - m); l = l * exp(m_old - m) +
    // rowsum(p)
    const float sl2 = p.score_log2;
#pragma unroll
    for (int mi = 0; mi < MT; ++mi) {
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float mx = row_max[mi][hr];
#pragma unroll
        for (int nt = 0; nt < NT; ++nt)
          mx = fmaxf(mx, fmaxf(s[mi][nt][hr * 2], s[mi][nt][hr * 2 + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_use = mx == -INFINITY ? 0.f : mx;  // a row with nothing visible yet
        const float alpha = fast_exp2((row_max[mi][hr] - m_use) * sl2);
        row_max[mi][hr] = mx;
        row_sum[mi][hr] *= alpha;
#pragma unroll
        for (int dt = 0; dt < DT; ++dt) {
          o[mi][dt][hr * 2] *= alpha;
          o[mi][dt][hr * 2 + 1] *= alpha;
        }
        const float msc = m_use * sl2;
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          const float e0 = fast_exp2(fmaf(s[mi][nt][hr * 2], sl2, -msc));
          const float e1 = fast_exp2(fmaf(s[mi][nt][hr * 2 + 1], sl2, -msc));
          s[mi][nt][hr * 2] = e0;
          s[mi][nt][hr * 2 + 1] = e1;
          row_sum[mi][hr] += e0 + e1;
        }
      }
    }

    // o += p @ v; P packed to 16 bits just in time (S tiles 2kk, 2kk+1 form the A fragment of
    // k-step kk), so the packed copy never holds registers for the whole tile.
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      std::uint32_t pa[MT][4];
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
        pa[mi][0] = pack2<T>(s[mi][2 * kk][0], s[mi][2 * kk][1]);
        pa[mi][1] = pack2<T>(s[mi][2 * kk][2], s[mi][2 * kk][3]);
        pa[mi][2] = pack2<T>(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
        pa[mi][3] = pack2<T>(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < DT / 2; ++dp) {
        std::uint32_t bv[4];
        ldmatrix_x4_trans(bv, sVs + (v_off ^ (dp << 4)) + kk * 16 * D);
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          mma_16816<T>(o[mi][2 * dp], pa[mi], bv[0], bv[1]);
          mma_16816<T>(o[mi][2 * dp + 1], pa[mi], bv[2], bv[3]);
        }
      }
    }
    have = next;
    if constexpr (kTwoStage) stage ^= 1;
  }
  cp_async_wait<0>();

  // out = o / l; lse = m + log(l); rows with l == 0 saw no key: out 0, lse -inf.
#pragma unroll
  for (int mi = 0; mi < MT; ++mi) {
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float l = row_sum[mi][hr];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.f ? 1.f / l : 0.f;
      const int row = warp_row0 + mi * 16 + (lane >> 2) + hr * 8;
      if (row >= rows_valid) continue;
      const i64 qi = q0 + row;
      if (p.lse != nullptr && (lane & 3) == 0) {
        p.lse[b * p.lse_batch_stride + qi * p.lse_token_stride + h * p.lse_head_stride] =
            l > 0.f ? row_max[mi][hr] * p.score_to_nat + logf(l) : -INFINITY;
      }
      const i64 base = b * p.out_batch_stride + qi * p.out_token_stride + h * p.out_head_stride;
#pragma unroll
      for (int dt = 0; dt < DT; ++dt) {
        const int col = dt * 8 + (lane & 3) * 2;
        const float v0 = o[mi][dt][hr * 2] * inv, v1 = o[mi][dt][hr * 2 + 1] * inv;
        if (p.out_f32) {
          *reinterpret_cast<float2*>(static_cast<float*>(p.out) + base + col) = make_float2(v0, v1);
        } else {
          *reinterpret_cast<std::uint32_t*>(static_cast<T*>(p.out) + base + col) = pack2<T>(v0, v1);
        }
      }
    }
  }
}

}  // namespace spattn::cuda::flash_v0
