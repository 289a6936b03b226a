// cuda/kernels/flash_fwd/kernel.cuh: flash-attention forward (FlashAttention-2 scheme) with
// mma.sync m16n8k16, ldmatrix and cp.async, for the masks of core/problem.h. In PyTorch terms,
// per (batch, head):
//   s = (q @ k.T) * scale;  s = softcap * tanh(s / softcap) if softcap;  s[~visible] = -inf
//   lse = torch.logsumexp(s, -1);  out = torch.softmax(s, -1) @ v   (rows with no visible key: 0,
//   -inf)
// One CTA: kBlockM queries of one (batch, head), looping over the key tiles of the segments that
// the masks leave (fully masked tiles are skipped, fully visible ones skip the per-element mask).
// Pipeline (single-buffered K and V, as FlashAttention-2): the load of V(j) overlaps S = Q K(j)^T,
// the load of K(j+1) overlaps the softmax and O += P V(j). Per-segment tile ranges (visible, and
// fully visible) are worked out once per CTA into a table in shared memory; in the loop each thread
// walks its K/V source pointers by one tile per step, and shared memory is addressed as 32-bit
// offsets, so the per-tile integer work is a few adds and compares. Online softmax with a lazy
// rescale (FwdTraits::kLazyRescale): a row's running max is only raised when a tile exceeds it by
// more than 8 in exp2 units (P <= 2^8), and the O *= exp(m_old - m_new) pass runs only when some
// row of the warp raised it (a warp vote), so after the first tiles most tiles skip those 64-128
// multiplies.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "cuda/kernels/common/flash.cuh"
#include "cuda/kernels/flash_fwd/params.h"
#include "cuda/kernels/flash_fwd/traits.h"

namespace spattn::cuda::flash {

__device__ __forceinline__ std::uint32_t smem_u32(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async_16(std::uint32_t s, const void* gmem, bool pred) {
  const int bytes = pred ? 16 : 0;  // 0: zero-fill, nothing read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cp_async_16(std::uint32_t s, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int kPending>  // wait until at most kPending committed groups are still in flight
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], std::uint32_t s) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], std::uint32_t s) {
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

// Element offset of (row, 16-byte chunk) in a tile of rows of kChunks chunks: the chunk index is
// XORed with row % 8 so the 8 rows an ldmatrix phase reads hit 8 different bank groups.
template <int kChunks>
__device__ __forceinline__ int swz(int row, int chunk) {
  return row * kChunks * 8 + ((chunk ^ (row & 7)) << 3);
}

template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads, Tr::kMinBlocks)
    flash_fwd_kernel(const __grid_constant__ FwdParams p) {
  using T = typename Tr::T;
  constexpr int D = Tr::kHeadDim, BM = Tr::kBlockM, BN = Tr::kBlockN, MT = Tr::kMTiles,
                NT = Tr::kNTiles, DT = Tr::kDTiles, KS = Tr::kKSteps, CH = Tr::kChunks,
                NTH = Tr::kThreads, TI = Tr::kTableInts;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  int* s_table = reinterpret_cast<int*>(smem_raw + Tr::kTableOffset);
  // Shared addresses in bytes.
  const std::uint32_t sQ = smem_u32(smem_raw);
  const std::uint32_t sK = sQ + BM * D * 2;
  const std::uint32_t sV = sK + BN * D * 2;

  const int m_block = gridDim.x - 1 - blockIdx.x;  // the longest causal rows first
  const int h = blockIdx.y;
  const int b = blockIdx.z;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const i64 q0 = static_cast<i64>(m_block) * BM;
  const int rows_valid = static_cast<int>(min(static_cast<i64>(BM), p.nq - q0));
  const i64 kv_head = (p.q_head_start + h) / p.group;

  // Loader: thread tid copies 16-byte chunk tid % CH of rows tid / CH + i * kRowStep; kRowStep is a
  // multiple of 8, so the swizzled shared offset only advances by whole rows. src points at the
  // thread's chunk of the tile's row 0 (+ ld_row); rows at or past n_valid are zero-filled.
  constexpr int kRowStep = NTH / CH;
  static_assert(kRowStep % 8 == 0, "rows per loader pass keep row % 8 fixed");
  const int ld_row = tid / CH, ld_chunk = tid % CH;
  const std::uint32_t ld_smem = 2 * swz<CH>(ld_row, ld_chunk);
  auto load_rows = [&](std::uint32_t dst, const T* src, i64 ts, int rows, int n_valid) {
    const i64 step = kRowStep * ts;
    if (n_valid >= rows) {
#pragma unroll
      for (int i = 0; i < rows / kRowStep; ++i) {
        cp_async_16(dst + ld_smem + i * kRowStep * D * 2, src);
        src += step;
      }
    } else {
#pragma unroll
      for (int i = 0; i < rows / kRowStep; ++i) {
        const bool ok = ld_row + i * kRowStep < n_valid;
        cp_async_16(dst + ld_smem + i * kRowStep * D * 2, ok ? src : p.q, ok);
        src += step;
      }
    }
    cp_async_commit();
  };

  // Q tile -> shared memory (rows past nq zero-filled).
  load_rows(sQ,
            static_cast<const T*>(p.q) + b * p.q_batch_stride + h * p.q_head_stride +
                (q0 + ld_row) * p.q_token_stride + ld_chunk * 8,
            p.q_token_stride, BM, rows_valid);
  RowDoc* s_doc = reinterpret_cast<RowDoc*>(smem_raw + Tr::kRowDocOffset);
  build_tables<BN, BM, NTH, TI>(p, q0, rows_valid, s_table, s_doc, tid);

  // Tile cursor over (segment, key tile), skipping fully masked tiles; kp and vp point at this
  // thread's chunk of the cursor tile's K and V. The segment's other bounds stay in s_table (one
  // shared load each per tile rather than registers held across the loop).
  int seg = -1, tile = 0;
  const T* kp = nullptr;
  const T* vp = nullptr;
  auto enter = [&]() -> bool {  // first tile of the next segment that has one
    while (++seg < p.num_segments) {
      const int* t = s_table + seg * TI;
      tile = t[0];
      if (tile < t[1]) {
        const Segment& sg = p.seg[seg];
        const i64 row = static_cast<i64>(tile) * BN + ld_row, hk = kv_head - sg.kv_head_start;
        kp = static_cast<const T*>(sg.k) + b * sg.k_batch_stride + hk * sg.k_head_stride +
             row * sg.k_token_stride + ld_chunk * 8;
        vp = static_cast<const T*>(sg.v) + b * sg.v_batch_stride + hk * sg.v_head_stride +
             row * sg.v_token_stride + ld_chunk * 8;
        return true;
      }
    }
    return false;
  };
  auto advance = [&]() -> bool {
    if (++tile < s_table[seg * TI + 1]) {
      kp += BN * p.seg[seg].k_token_stride;
      vp += BN * p.seg[seg].v_token_stride;
      return true;
    }
    return enter();
  };
  auto tile_rows = [&]() -> int {  // real keys in the cursor tile
    return tile < s_table[seg * TI + 4]
               ? BN
               : static_cast<int>(p.seg[seg].nk - static_cast<i64>(tile) * BN);
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
  // ldmatrix byte offsets. With swz(), the chunk of (row, 2k + c) is (2k + c) ^ (row % 8); rows
  // advance in multiples of 8, so row % 8 = lane % 8 and the offset of k-step k is
  // lane_off ^ (k << 5), plus whole 16-row blocks: one register per operand, not one per step.
  const int r8 = lane & 7;
  const std::uint32_t q_off = 2 * ((warp_row0 + (lane & 15)) * D + (((lane >> 4) ^ r8) << 3));
  const std::uint32_t k_off = 2 * ((r8 + ((lane >> 4) << 3)) * D + ((((lane >> 3) & 1) ^ r8) << 3));
  const std::uint32_t v_off = 2 * ((r8 + ((lane >> 3) & 1) * 8) * D + (((lane >> 4) ^ r8) << 3));
  std::uint32_t q_frag[Tr::kQInRegs ? KS : 1][4];

  bool have = enter();
  if (have) load_rows(sK, kp, p.seg[seg].k_token_stride, BN, tile_rows());
  if constexpr (Tr::kQInRegs) {
    cp_async_wait<0>();
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < KS; ++kk) ldmatrix_x4(q_frag[kk], sQ + (q_off ^ (kk << 5)));
  }

  while (have) {
    const int cur_seg = seg, cur_tile = tile;
    const bool full = tile >= s_table[seg * TI + 2] && tile < s_table[seg * TI + 3];
    cp_async_wait<0>();  // K(tile) (and Q) landed
    __syncthreads();     // ... for every thread; and every warp is done reading V(previous)
    load_rows(sV, vp, p.seg[seg].v_token_stride, BN, tile_rows());

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
          ldmatrix_x4(a[mi], sQ + (q_off ^ (kk << 5)) + mi * 16 * D * 2);
        }
      }
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        std::uint32_t bk[4];
        ldmatrix_x4(bk, sK + (k_off ^ (kk << 5)) + np * 16 * D * 2);
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
    if (!full) {
      const Segment& sg = p.seg[cur_seg];
      const i64 j0 = static_cast<i64>(cur_tile) * BN;
      const i64 kmin = sg.start + sg.stride * j0;
      // Positions relative to the tile's first key fit in int (can_implement bounds them).
      const int kst = static_cast<int>(sg.stride);
      const int n_valid = static_cast<int>(min(static_cast<i64>(BN), sg.nk - j0));
      if (p.num_doc_bounds > 0 && !sg.joint) {  // packed documents: the row's own keys only
#pragma unroll
        for (int mi = 0; mi < MT; ++mi)
          mask_documents<NT>(&s[mi][0][0], s_doc, p, q0, warp_row0 + mi * 16 + (lane >> 2), kmin,
                             kst, lane);
      }
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

    cp_async_wait<0>();  // V(tile) landed
    __syncthreads();     // ... for every thread; every warp is done reading K(tile)
    const bool next = advance();
    if (next) load_rows(sK, kp, p.seg[seg].k_token_stride, BN, tile_rows());

    // Online softmax: m = max(m, rowmax(s)); o *= exp(m_old - m); l = l * exp(m_old - m) +
    // rowsum(p). Lazy: m stays m_old while rowmax(s) exceeds it by at most the threshold, and the
    // o pass runs only when some row of the warp moved its max.
    const float sl2 = p.score_log2;
    float msc[MT][2];  // the max used by this tile's exponents, times sl2
    {
      float alpha[MT][2];
      bool moved = false;
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const float m_old = row_max[mi][hr];
          float mx = m_old;
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
            mx = fmaxf(mx, fmaxf(s[mi][nt][hr * 2], s[mi][nt][hr * 2 + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          // keep is false when m_old is -inf and mx finite ((mx - m_old) = inf) or both -inf (NaN).
          const bool keep = Tr::kLazyRescale && (mx - m_old) * sl2 <= Tr::kLazyThresholdLog2;
          const float m_new = keep ? m_old : mx;
          const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing visible yet
          alpha[mi][hr] =
              keep ? 1.f : (m_old == -INFINITY ? 0.f : fast_exp2((m_old - m_use) * sl2));
          moved |= !keep;
          row_max[mi][hr] = m_new;
          msc[mi][hr] = m_use * sl2;
        }
      }
      if (!Tr::kLazyRescale || __any_sync(0xffffffffu, moved)) {
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          row_sum[mi][0] *= alpha[mi][0];
          row_sum[mi][1] *= alpha[mi][1];
#pragma unroll
          for (int dt = 0; dt < DT; ++dt) {
            o[mi][dt][0] *= alpha[mi][0];
            o[mi][dt][1] *= alpha[mi][0];
            o[mi][dt][2] *= alpha[mi][1];
            o[mi][dt][3] *= alpha[mi][1];
          }
        }
      }
    }
#pragma unroll
    for (int mi = 0; mi < MT; ++mi)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          const float e0 = fast_exp2(fmaf(s[mi][nt][hr * 2], sl2, -msc[mi][hr]));
          const float e1 = fast_exp2(fmaf(s[mi][nt][hr * 2 + 1], sl2, -msc[mi][hr]));
          s[mi][nt][hr * 2] = e0;
          s[mi][nt][hr * 2 + 1] = e1;
          row_sum[mi][hr] += e0 + e1;
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
        ldmatrix_x4_trans(bv, sV + (v_off ^ (dp << 5)) + kk * 16 * D * 2);
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          mma_16816<T>(o[mi][2 * dp], pa[mi], bv[0], bv[1]);
          mma_16816<T>(o[mi][2 * dp + 1], pa[mi], bv[2], bv[3]);
        }
      }
    }
    have = next;
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

}  // namespace spattn::cuda::flash
