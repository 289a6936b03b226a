#include "cuda/executor.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <thread>

#include "core/reference.h"
#include "core/shard.h"
#include "cuda/attention.h"
#include "cuda/check.h"
#include "cuda/comm/nccl.h"
#include "cuda/convert.h"
#include "cuda/half.h"
#include "cuda/task_launch.h"
#ifdef SPATTN_WITH_MPI
#include <mpi.h>
#endif

namespace spattn::cuda {
namespace {

using core::Buffer;
using core::Plan;
using core::Task;
using core::TaskId;
using core::View;

constexpr std::size_t kAlign = 256;

// The bits of x in `t` at `out` (x is already representable in t: core::round_to).
void encode_one(core::DType t, double x, std::uint8_t* out) {
  const float f = static_cast<float>(x);
  if (t == core::DType::kF32) {
    std::memcpy(out, &f, 4);
    return;
  }
  const std::uint16_t h = t == core::DType::kBF16 ? float_to_bf16(f) : float_to_fp16(f);
  std::memcpy(out, &h, 2);
}

double decode(core::DType t, const std::uint8_t* p) {
  if (t == core::DType::kF32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return t == core::DType::kBF16 ? bf16_to_float(h) : fp16_to_float(h);
}

// One rank's GPU state: its buffers in one allocation, its two streams, an event per task edge.
struct RankState {
  int rank = 0, device = 0;
  void* arena = nullptr;
  std::size_t arena_size = 0;  // core::memory_layout's bytes for this rank (the prediction)
  std::map<core::BufferId, std::size_t> offset;
  cudaStream_t stream[2] = {nullptr, nullptr};
  cudaEvent_t origin = nullptr;
  std::size_t free_before = 0, free_after_arena = 0;
  // Packed documents: every local attention block's AttnBlock::doc_bounds, one after the other
  // (Runner::doc_at_ gives each block's first), uploaded once.
  std::int64_t* doc_bounds = nullptr;
};

class Runner {
 public:
  Runner(const Plan& plan, const ExecOptions& opt) : plan_(plan), opt_(opt) {}
  ~Runner() { release(); }

  Status setup(bool use_mpi);
  Status run_iteration(core::Timeline* timeline, double* ms);
  Status check(ExecResult& res);
  Status read_row(core::TensorKind t, const core::RowId& row, std::vector<double>& into,
                  bool* held);
  Status measure_memory(ExecResult& res);
  Status digest(ExecResult& res);
  const std::vector<int>& local_ranks() const { return local_; }

 private:
  RankState& state(int rank) { return ranks_[static_cast<std::size_t>(slot_.at(rank))]; }
  bool local(int rank) const { return slot_.count(rank) > 0; }
  void* ptr(const View& v);
  Status launch(const Task& t, cudaStream_t s);
  Status wait_deps(const Task& t, cudaStream_t s);
  Status copy_collective(const std::vector<const Task*>& tasks);
  void release();

  const Plan& plan_;
  const ExecOptions& opt_;
  std::vector<int> local_;
  std::map<int, int> slot_;  // rank -> index in ranks_
  std::vector<RankState> ranks_;
  Communicators comms_;
  std::vector<std::vector<TaskId>> order_;
  std::vector<std::vector<TaskId>> waits_;  // per task: core::explicit_waits
  std::vector<cudaEvent_t> start_, end_;    // per task (local tasks only)
  std::vector<std::size_t> doc_at_;         // per task: its doc_bounds in RankState::doc_bounds
  bool aborted_ = false;
};

void* Runner::ptr(const View& v) {
  const Buffer& b = plan_.buffers[static_cast<std::size_t>(v.buffer)];
  RankState& r = state(b.rank);
  const std::size_t elem = static_cast<std::size_t>(core::dtype_bytes(elem_dtype(plan_, b)));
  const std::size_t at =
      static_cast<std::size_t>((v.token_offset * b.heads + v.head_offset) * b.width);
  return static_cast<char*>(r.arena) + r.offset.at(v.buffer) + at * elem;
}

Status Runner::setup(bool use_mpi) {
  int devices = 0;
  SPATTN_CUDA_CHECK(cudaGetDeviceCount(&devices));
  std::vector<int> dev;
  if (use_mpi) {
#ifdef SPATTN_WITH_MPI
    int me = 0, size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (size != plan_.world)
      return invalid_argument("plan " + plan_.name() + " needs " + std::to_string(plan_.world) +
                              " ranks, mpirun started " + std::to_string(size) + " processes");
    const char* lr = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    local_ = {me};
    dev = {(lr ? std::atoi(lr) : me) % devices};
#endif
  } else if (opt_.one_gpu) {
    for (int r = 0; r < plan_.world; ++r) {
      local_.push_back(r);
      dev.push_back(0);
    }
  } else {
    if (devices < plan_.world)
      return unavailable("plan " + plan_.name() + " needs " + std::to_string(plan_.world) +
                         " GPUs, this machine has " + std::to_string(devices) +
                         " (use mpirun for more than one node)");
    for (int r = 0; r < plan_.world; ++r) {
      local_.push_back(r);
      dev.push_back(r);
    }
  }
  for (std::size_t i = 0; i < local_.size(); ++i) slot_[local_[i]] = static_cast<int>(i);
  ranks_.resize(local_.size());

  Expected<std::vector<std::vector<TaskId>>> order = core::issue_order(plan_);
  if (!order) return order.status();
  order_ = std::move(order).value();
  waits_ = core::explicit_waits(plan_, order_);

  if (!opt_.one_gpu) {
    Expected<Communicators> comms = Communicators::create(plan_, local_, dev, use_mpi);
    if (!comms) return comms.status();
    comms_ = std::move(comms).value();
  }

  // Memory: the plan's arena (core::memory_layout: a streaming plan reuses the bytes of buffers
  // whose chunk is over) against each GPU's free memory, then one allocation per rank.
  const core::MemoryLayout layout = core::memory_layout(plan_, kAlign);
  const std::vector<Bytes>& need = layout.bytes;
  for (std::size_t i = 0; i < local_.size(); ++i) {
    RankState& r = ranks_[i];
    r.rank = local_[i];
    r.device = dev[i];
    SPATTN_CUDA_CHECK(cudaSetDevice(r.device));
    std::size_t free = 0, total = 0;
    SPATTN_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    r.free_before = free;
    for (std::size_t b = 0; b < plan_.buffers.size(); ++b)
      if (plan_.buffers[b].rank == r.rank)
        r.offset[static_cast<core::BufferId>(b)] = static_cast<std::size_t>(layout.offset[b]);
    const auto bytes = static_cast<std::size_t>(need[static_cast<std::size_t>(r.rank)]);
    r.arena_size = bytes;
    const double gib = 1.0 / static_cast<double>(kGiB);
    if (bytes > free)
      return infeasible(
          "plan " + plan_.name() + " needs " +
          std::to_string(static_cast<double>(need[static_cast<std::size_t>(r.rank)]) * gib) +
          " GiB on rank " + std::to_string(r.rank) + " but GPU " + std::to_string(r.device) +
          " has " + std::to_string(static_cast<double>(free) * gib) + " GiB free");
    SPATTN_CUDA_CHECK(cudaMalloc(&r.arena, std::max<std::size_t>(bytes, 1)));
    SPATTN_CUDA_CHECK(cudaMemset(r.arena, 0, std::max<std::size_t>(bytes, 1)));
    SPATTN_CUDA_CHECK(cudaMemGetInfo(&r.free_after_arena, &total));
    // The comm stream at the highest priority: NCCL's kernels then take the next SMs an
    // attention kernel frees instead of waiting behind all of its blocks.
    int least = 0, greatest = 0;
    SPATTN_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    for (int k = 0; k < 2; ++k)
      SPATTN_CUDA_CHECK(cudaStreamCreateWithPriority(
          &r.stream[k], cudaStreamNonBlocking,
          k == static_cast<int>(core::Stream::kComm) ? greatest : least));
    SPATTN_CUDA_CHECK(cudaEventCreate(&r.origin));
  }
  // Packed documents: each rank's blocks' boundaries in one small allocation of their own (kernel
  // parameters, not a plan buffer: the arena stays core::memory_layout's).
  doc_at_.assign(plan_.tasks.size(), 0);
  for (RankState& r : ranks_) {
    std::vector<std::int64_t> bounds;
    for (const Task& t : plan_.tasks)
      if (const auto* a = std::get_if<core::AttnBlock>(&t.op); a && t.rank == r.rank) {
        doc_at_[static_cast<std::size_t>(t.id)] = bounds.size();
        bounds.insert(bounds.end(), a->doc_bounds.begin(), a->doc_bounds.end());
      }
    if (bounds.empty()) continue;
    const std::size_t bytes = bounds.size() * sizeof(std::int64_t);
    SPATTN_CUDA_CHECK(cudaSetDevice(r.device));
    SPATTN_CUDA_CHECK(cudaMalloc(&r.doc_bounds, bytes));
    SPATTN_CUDA_CHECK(cudaMemcpy(r.doc_bounds, bounds.data(), bytes, cudaMemcpyHostToDevice));
  }
  start_.assign(plan_.tasks.size(), nullptr);
  end_.assign(plan_.tasks.size(), nullptr);
  for (const Task& t : plan_.tasks) {
    if (!local(t.rank)) continue;
    SPATTN_CUDA_CHECK(cudaSetDevice(state(t.rank).device));
    SPATTN_CUDA_CHECK(cudaEventCreate(&start_[static_cast<std::size_t>(t.id)]));
    SPATTN_CUDA_CHECK(cudaEventCreate(&end_[static_cast<std::size_t>(t.id)]));
  }

  // Inputs: generated, rounded to the dtype and encoded straight into host bytes on every core
  // (core::generate_input), then copied in, one buffer at a time.
  for (std::size_t b = 0; b < plan_.buffers.size(); ++b) {
    const Buffer& buf = plan_.buffers[b];
    if (buf.role != core::BufferRole::kInput || !local(buf.rank)) continue;
    const core::DType dt = elem_dtype(plan_, buf);
    const auto elem = static_cast<std::size_t>(core::dtype_bytes(dt));
    const std::int64_t n = buf.batch * buf.tokens * buf.heads * buf.width;
    std::unique_ptr<std::uint8_t[]> bits(new std::uint8_t[static_cast<std::size_t>(n) * elem]);
    core::generate_input(plan_, buf, opt_.seed, [&](std::int64_t i, double v) {
      encode_one(dt, v, &bits[static_cast<std::size_t>(i) * elem]);
    });
    SPATTN_CUDA_CHECK(cudaSetDevice(state(buf.rank).device));
    const View all{static_cast<core::BufferId>(b), 0, buf.tokens, 0, buf.heads};
    SPATTN_CUDA_CHECK(cudaMemcpy(ptr(all), bits.get(), static_cast<std::size_t>(n) * elem,
                                 cudaMemcpyHostToDevice));
  }
  return {};
}

Status Runner::wait_deps(const Task& t, cudaStream_t s) {
  for (TaskId d : waits_[static_cast<std::size_t>(t.id)])
    SPATTN_CUDA_CHECK(cudaStreamWaitEvent(s, end_[static_cast<std::size_t>(d)], 0));
  return {};
}

Status Runner::launch(const Task& t, cudaStream_t s) {
  const std::int64_t* doc_bounds = nullptr;
  if (const auto* a = std::get_if<core::AttnBlock>(&t.op); a && !a->doc_bounds.empty())
    doc_bounds = state(t.rank).doc_bounds + doc_at_[static_cast<std::size_t>(t.id)];
  return launch_task(
      plan_, t, [this](core::BufferId b) { return ptr(View{b, 0, 0, 0, 0}); }, doc_bounds, s);
}

// ExecOptions::one_gpu: a collective's transfers as device copies, every rank on the same GPU.
// Each task's start event marks its dependencies met (run_iteration records it after wait_deps);
// the first task's stream waits for all of them, makes every copy (the k-th send from a to b into
// the k-th receive of b from a, of the same size: core::validate) and marks the end, which the
// other tasks' streams wait for.
Status Runner::copy_collective(const std::vector<const Task*>& tasks) {
  const Task& first = *tasks.front();
  cudaStream_t s = state(first.rank).stream[static_cast<int>(first.stream)];
  for (const Task* t : tasks)
    SPATTN_CUDA_CHECK(cudaStreamWaitEvent(s, start_[static_cast<std::size_t>(t->id)], 0));
  std::map<std::pair<int, int>, std::vector<const View*>> recvs;  // (receiver, sender) -> views
  for (const Task* t : tasks)
    for (const core::Transfer& x : std::get<core::Comm>(t->op).recvs)
      recvs[{t->rank, x.peer}].push_back(&x.view);
  std::map<std::pair<int, int>, std::size_t> taken;
  for (const Task* t : tasks)
    for (const core::Transfer& x : std::get<core::Comm>(t->op).sends) {
      const std::vector<const View*>& to = recvs[{x.peer, t->rank}];
      std::size_t& k = taken[{x.peer, t->rank}];
      const Bytes bytes = core::view_bytes(plan_, x.view);
      if (k >= to.size() || core::view_bytes(plan_, *to[k]) != bytes)
        return internal_error("plan " + plan_.name() + ": task " + std::to_string(t->id) + " (" +
                              t->label + ") sends to rank " + std::to_string(x.peer) +
                              " with no receive of the same size to match");
      SPATTN_CUDA_CHECK(cudaMemcpyAsync(ptr(*to[k++]), ptr(x.view), static_cast<std::size_t>(bytes),
                                        cudaMemcpyDeviceToDevice, s));
    }
  SPATTN_CUDA_CHECK(cudaEventRecord(end_[static_cast<std::size_t>(first.id)], s));
  for (const Task* t : tasks)
    if (t != &first)
      SPATTN_CUDA_CHECK(cudaStreamWaitEvent(state(t->rank).stream[static_cast<int>(t->stream)],
                                            end_[static_cast<std::size_t>(first.id)], 0));
  return {};
}

Status Runner::run_iteration(core::Timeline* timeline, double* ms) {
  for (RankState& r : ranks_) {
    SPATTN_CUDA_CHECK(cudaSetDevice(r.device));
    SPATTN_CUDA_CHECK(cudaDeviceSynchronize());
  }
#ifdef SPATTN_WITH_MPI
  if (launched_by_mpi()) MPI_Barrier(MPI_COMM_WORLD);
#endif
  for (RankState& r : ranks_) {
    SPATTN_CUDA_CHECK(cudaSetDevice(r.device));
    SPATTN_CUDA_CHECK(cudaEventRecord(r.origin, r.stream[0]));
    SPATTN_CUDA_CHECK(cudaStreamWaitEvent(r.stream[1], r.origin, 0));
  }
  for (const std::vector<TaskId>& unit : order_) {
    std::vector<const Task*> mine;
    for (TaskId id : unit)
      if (local(plan_.tasks[static_cast<std::size_t>(id)].rank))
        mine.push_back(&plan_.tasks[static_cast<std::size_t>(id)]);
    if (mine.empty()) continue;
    for (const Task* t : mine) {
      RankState& r = state(t->rank);
      cudaStream_t s = r.stream[static_cast<int>(t->stream)];
      SPATTN_CUDA_CHECK(cudaSetDevice(r.device));
      SPATTN_RETURN_IF_ERROR(wait_deps(*t, s));
      SPATTN_CUDA_CHECK(cudaEventRecord(start_[static_cast<std::size_t>(t->id)], s));
    }
    if (mine.front()->collective < 0) {
      const Task& t = *mine.front();
      SPATTN_RETURN_IF_ERROR(launch(t, state(t.rank).stream[static_cast<int>(t.stream)]));
    } else if (opt_.one_gpu) {
      SPATTN_RETURN_IF_ERROR(copy_collective(mine));
    } else {
      // All local tasks of the collective in one NCCL group (needed when one thread drives several
      // GPUs).
      SPATTN_NCCL_CHECK(ncclGroupStart());
      for (const Task* t : mine) {
        RankState& r = state(t->rank);
        const auto& c = std::get<core::Comm>(t->op);
        const std::vector<int>& members = plan_.groups[static_cast<std::size_t>(c.group)];
        ncclComm_t comm = comms_.get(c.group, t->rank);
        cudaStream_t s = r.stream[static_cast<int>(t->stream)];
        auto peer_index = [&](int peer) {
          return static_cast<int>(std::find(members.begin(), members.end(), peer) -
                                  members.begin());
        };
        for (const core::Transfer& x : c.sends)
          SPATTN_NCCL_CHECK(ncclSend(ptr(x.view),
                                     static_cast<std::size_t>(core::view_bytes(plan_, x.view)),
                                     ncclUint8, peer_index(x.peer), comm, s));
        for (const core::Transfer& x : c.recvs)
          SPATTN_NCCL_CHECK(ncclRecv(ptr(x.view),
                                     static_cast<std::size_t>(core::view_bytes(plan_, x.view)),
                                     ncclUint8, peer_index(x.peer), comm, s));
      }
      SPATTN_NCCL_CHECK(ncclGroupEnd());
    }
    for (const Task* t : mine) {
      RankState& r = state(t->rank);
      SPATTN_CUDA_CHECK(cudaSetDevice(r.device));
      SPATTN_CUDA_CHECK(cudaEventRecord(end_[static_cast<std::size_t>(t->id)],
                                        r.stream[static_cast<int>(t->stream)]));
    }
  }
  // Watchdog: wait for both streams of every rank; abort NCCL when it takes too long.
  const auto t0 = std::chrono::steady_clock::now();
  for (RankState& r : ranks_) {
    SPATTN_CUDA_CHECK(cudaSetDevice(r.device));
    for (cudaStream_t s : r.stream) {
      while (true) {
        const cudaError_t e = cudaStreamQuery(s);
        if (e == cudaSuccess) break;
        if (e != cudaErrorNotReady) SPATTN_CUDA_CHECK(e);
        SPATTN_RETURN_IF_ERROR(comms_.async_error());
        const double waited =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (waited > opt_.watchdog_s) {
          comms_.abort();
          aborted_ = true;
          return internal_error("plan " + plan_.name() + ": an iteration did not finish in " +
                                std::to_string(opt_.watchdog_s) + " s; NCCL communicators aborted");
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  }
  double slowest = 0;
  if (timeline) {
    timeline->source = "cuda";
    timeline->spans.assign(plan_.tasks.size(), {});
  }
  for (const Task& t : plan_.tasks) {
    if (!local(t.rank)) continue;
    const RankState& r = state(t.rank);
    float a = 0, b = 0;
    SPATTN_CUDA_CHECK(cudaEventElapsedTime(&a, r.origin, start_[static_cast<std::size_t>(t.id)]));
    SPATTN_CUDA_CHECK(cudaEventElapsedTime(&b, r.origin, end_[static_cast<std::size_t>(t.id)]));
    slowest = std::max(slowest, static_cast<double>(b));
    if (timeline)
      timeline->spans[static_cast<std::size_t>(t.id)] = {
          t.id, static_cast<TimePs>(std::llround(a * 1e9)),
          static_cast<TimePs>(std::llround(b * 1e9))};
  }
  if (timeline) timeline->total = static_cast<TimePs>(std::llround(slowest * 1e9));
  *ms = slowest;
  return {};
}

Status Runner::measure_memory(ExecResult& res) {
  for (RankState& r : ranks_) {
    SPATTN_CUDA_CHECK(cudaSetDevice(r.device));
    std::size_t free = 0, total = 0;
    SPATTN_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    res.predicted_bytes.push_back(static_cast<Bytes>(r.arena_size));
    res.measured_bytes.push_back(static_cast<Bytes>(r.free_before) - static_cast<Bytes>(free));
    res.arena_bytes.push_back(static_cast<Bytes>(r.free_before) -
                              static_cast<Bytes>(r.free_after_arena));
  }
  return {};
}

// Row (b, pos, head) of output tensor `t` (kOut or kLse) from the local buffer that holds it,
// decoded into `into` (width values); *held = false when no local buffer holds it (another
// process's rank).
Status Runner::read_row(core::TensorKind t, const core::RowId& row, std::vector<double>& into,
                        bool* held) {
  *held = false;
  for (std::size_t i = 0; i < plan_.buffers.size(); ++i) {
    const Buffer& buf = plan_.buffers[i];
    if (buf.role != core::BufferRole::kOutput || buf.tensor != t || !local(buf.rank) ||
        row.b >= buf.batch || row.head < buf.head_start || row.head >= buf.head_start + buf.heads)
      continue;
    const std::optional<std::int64_t> token = core::local_token(buf, row.pos);
    if (!token) continue;
    const core::DType type = elem_dtype(plan_, buf);
    const auto elem = static_cast<std::size_t>(core::dtype_bytes(type));
    const auto batch_bytes = static_cast<std::size_t>(buf.tokens * buf.heads * buf.width) * elem;
    std::vector<std::uint8_t> bits(static_cast<std::size_t>(buf.width) * elem);
    const View at{static_cast<core::BufferId>(i), *token, 1, row.head - buf.head_start, 1};
    SPATTN_CUDA_CHECK(cudaSetDevice(state(buf.rank).device));
    SPATTN_CUDA_CHECK(cudaMemcpy(
        bits.data(), static_cast<char*>(ptr(at)) + static_cast<std::size_t>(row.b) * batch_bytes,
        bits.size(), cudaMemcpyDeviceToHost));
    into.resize(static_cast<std::size_t>(buf.width));
    for (std::size_t w = 0; w < into.size(); ++w) into[w] = decode(type, &bits[w * elem]);
    *held = true;
    return {};
  }
  return {};
}

// Compares the output with the reference: whole when cheap, else sampled rows read from the GPUs.
Status Runner::check(ExecResult& res) {
  const core::Problem& p = plan_.problem;
  res.tolerance = p.dtype == core::DType::kBF16 ? 2e-2 : p.dtype == core::DType::kF16 ? 4e-3 : 1e-4;
  const bool whole =
      4.0 * static_cast<double>(p.batch * p.q_heads) * static_cast<double>(p.seq_len) *
          static_cast<double>(p.seq_len + p.joint_len) * static_cast<double>(p.head_dim) <=
      opt_.whole_check_max_flops;
  if (whole && !launched_by_mpi()) {
    core::AttentionResult got = core::poisoned_result(p);
    for (std::size_t b = 0; b < plan_.buffers.size(); ++b) {
      const Buffer& buf = plan_.buffers[b];
      if (buf.role != core::BufferRole::kOutput || !local(buf.rank)) continue;
      const core::DType t = elem_dtype(plan_, buf);
      const std::size_t elem = static_cast<std::size_t>(core::dtype_bytes(t));
      std::vector<std::uint8_t> bits(static_cast<std::size_t>(buf.elements()) * elem);
      SPATTN_CUDA_CHECK(cudaSetDevice(state(buf.rank).device));
      SPATTN_CUDA_CHECK(cudaMemcpy(
          bits.data(), ptr({static_cast<core::BufferId>(b), 0, buf.tokens, 0, buf.heads}),
          bits.size(), cudaMemcpyDeviceToHost));
      core::HostTensor x(buf.batch, buf.tokens, buf.heads, buf.width);
      for (std::size_t i = 0; i < x.data.size(); ++i) x.data[i] = decode(t, &bits[i * elem]);
      core::gather_output(plan_, buf, x, got);
    }
    const core::AttentionResult want =
        core::reference_attention(p, core::random_inputs(p, opt_.seed, true));
    res.check = "whole";
    const core::AttentionResult a = core::computed_rows(p, got), b = core::computed_rows(p, want);
    res.out_error = core::max_rel_error(a.out, b.out);
    res.lse_error = core::max_rel_error(a.lse, b.lse);
  } else {
    // Sampled rows among those this process holds: first, last and random valid positions.
    std::mt19937_64 rng(opt_.seed);
    std::vector<core::RowId> rows;
    std::vector<std::vector<double>> out_rows, lse_rows;
    std::vector<double> out_row, lse_row;
    for (int i = 0; i < opt_.check_heads; ++i) {
      const std::int64_t b = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(p.batch));
      const std::int64_t h =
          i == 0   ? 0
          : i == 1 ? p.q_heads - 1
                   : static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(p.q_heads));
      for (int j = 0; j < opt_.check_rows; ++j) {
        const std::int64_t first = p.cache_len;  // rows before it are the pre-filled cache's
        const std::int64_t pos =
            j == 0   ? first
            : j == 1 ? p.seq_len - 1
                     : first + static_cast<std::int64_t>(
                                   rng() % static_cast<std::uint64_t>(p.seq_len - first));
        bool held_out = false, held_lse = false;
        SPATTN_RETURN_IF_ERROR(read_row(core::TensorKind::kOut, {b, pos, h}, out_row, &held_out));
        SPATTN_RETURN_IF_ERROR(read_row(core::TensorKind::kLse, {b, pos, h}, lse_row, &held_lse));
        if (!held_out || !held_lse) continue;  // held by another process
        rows.push_back({b, pos, h});
        out_rows.push_back(out_row);
        lse_rows.push_back(lse_row);
      }
    }
    const core::AttentionResult want = core::reference_rows(p, opt_.seed, true, rows);
    core::AttentionResult mine{
        core::HostTensor(static_cast<std::int64_t>(rows.size()), 1, 1, p.head_dim),
        core::HostTensor(static_cast<std::int64_t>(rows.size()), 1, 1, 1)};
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const auto n = static_cast<std::int64_t>(i);
      for (std::int64_t w = 0; w < p.head_dim; ++w)
        mine.out.at(n, 0, 0, w) = out_rows[i][static_cast<std::size_t>(w)];
      mine.lse.at(n, 0, 0) = lse_rows[i][0];
    }
    res.check = std::to_string(rows.size()) + " sampled rows";
    res.out_error = core::max_rel_error(mine.out, want.out);
    res.lse_error = core::max_rel_error(mine.lse, want.lse);
  }
  res.check_passed = res.out_error <= res.tolerance && res.lse_error <= res.tolerance;
  return {};
}

Status Runner::digest(ExecResult& res) {
  for (int rank : local_) {
    std::uint64_t h = 1469598103934665603ULL;
    for (std::size_t b = 0; b < plan_.buffers.size(); ++b) {
      const Buffer& buf = plan_.buffers[b];
      if (buf.rank != rank || buf.role != core::BufferRole::kOutput) continue;
      std::vector<std::uint8_t> bytes(static_cast<std::size_t>(core::buffer_bytes(plan_, buf)));
      SPATTN_CUDA_CHECK(cudaSetDevice(state(rank).device));
      SPATTN_CUDA_CHECK(cudaMemcpy(
          bytes.data(), ptr({static_cast<core::BufferId>(b), 0, buf.tokens, 0, buf.heads}),
          bytes.size(), cudaMemcpyDeviceToHost));
      // FNV-1a over 8-byte words (the tail zero-padded): 2 GiB of outputs hash in about a second.
      bytes.resize((bytes.size() + 7) / 8 * 8, 0);
      for (std::size_t i = 0; i < bytes.size(); i += 8) {
        std::uint64_t word;
        std::memcpy(&word, &bytes[i], 8);
        h = (h ^ word) * 1099511628211ULL;
      }
    }
    res.output_digest.push_back(h);
  }
  return {};
}

void Runner::release() {
  for (cudaEvent_t e : start_)
    if (e) cudaEventDestroy(e);
  for (cudaEvent_t e : end_)
    if (e) cudaEventDestroy(e);
  for (RankState& r : ranks_) {
    cudaSetDevice(r.device);
    for (cudaStream_t s : r.stream)
      if (s) cudaStreamDestroy(s);
    if (r.origin) cudaEventDestroy(r.origin);
    if (r.arena) cudaFree(r.arena);
    if (r.doc_bounds) cudaFree(r.doc_bounds);
  }
  start_.clear();
  end_.clear();
  ranks_.clear();
}

std::string describe_devices(const std::vector<int>& ranks) {
  int n = 0, driver = 0;
  cudaGetDeviceCount(&n);
  cudaDriverGetVersion(&driver);
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  return std::to_string(ranks.size()) + " rank(s) on " + std::to_string(n) + " x " + prop.name +
         " (CUDA driver API " + std::to_string(driver) + "), NCCL " + nccl_version();
}

}  // namespace

bool launched_by_mpi() {
#ifdef SPATTN_WITH_MPI
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  return size != nullptr && std::atoi(size) > 1;
#else
  return false;
#endif
}

Expected<ExecResult> execute(const Plan& plan, const ExecOptions& options) {
  if (plan.represented_ranks > 0)
    return invalid_argument("plan " + plan.name() +
                            " is rank-symmetric (it holds some ranks only): it can be simulated "
                            "for time, not executed");
  const bool use_mpi = launched_by_mpi();
  if (use_mpi && options.one_gpu)
    return invalid_argument(
        "one_gpu (every rank on one GPU, no NCCL) needs one process; mpirun "
        "started several");
#ifdef SPATTN_WITH_MPI
  if (use_mpi) {
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) {
      MPI_Init(nullptr, nullptr);
      std::atexit([] {
        int done = 0;
        MPI_Finalized(&done);
        if (!done) MPI_Finalize();
      });
    }
  }
#endif
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0)
    return unavailable(std::string("no CUDA GPU is available (") + cudaGetErrorString(e) +
                       "); the cuda backend needs one. Use --backend sim or host on this machine");
  using Clock = std::chrono::steady_clock;
  const auto seconds_since = [](Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  };
  auto t0 = Clock::now();
  Runner runner(plan, options);
  SPATTN_RETURN_IF_ERROR(runner.setup(use_mpi));
  ExecResult res;
  res.setup_s = seconds_since(t0);
  t0 = Clock::now();
  res.world = plan.world;
  res.local_ranks = runner.local_ranks();
  res.device = describe_devices(res.local_ranks);
  if (options.one_gpu) res.device += ", every rank on GPU 0, transfers as device copies";
  double ms = 0;
  int warmup = options.warmup, iterations = std::max(options.iterations, 1);
  const bool by_time = options.warmup_ms > 0 || options.timed_ms > 0;
  for (int i = 0; i < warmup || (by_time && i == 0); ++i) {
    SPATTN_RETURN_IF_ERROR(runner.run_iteration(nullptr, &ms));
    if (by_time && i == 0) {  // the counts from the first run, the same in every process
      double run_ms = ms;
#ifdef SPATTN_WITH_MPI
      if (use_mpi) MPI_Allreduce(&ms, &run_ms, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
#endif
      warmup = runs_for(options.warmup_ms, run_ms, std::max(warmup, 1));
      iterations = runs_for(options.timed_ms, run_ms, iterations);
    }
  }
  std::vector<core::Timeline> timelines(static_cast<std::size_t>(iterations));
  for (core::Timeline& tl : timelines) {
    SPATTN_RETURN_IF_ERROR(runner.run_iteration(&tl, &ms));
    res.iteration_ms.push_back(ms);
  }
  std::vector<std::size_t> idx(timelines.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    return res.iteration_ms[a] < res.iteration_ms[b];
  });
  const std::size_t mid = idx[idx.size() / 2];
  res.median_ms = res.iteration_ms[mid];
  res.run_s = seconds_since(t0);
  t0 = Clock::now();
  res.timeline = std::move(timelines[mid]);
  SPATTN_RETURN_IF_ERROR(runner.measure_memory(res));
  SPATTN_RETURN_IF_ERROR(runner.digest(res));
  res.timeline.peak_memory = res.measured_bytes;
  if (options.check) {
    SPATTN_RETURN_IF_ERROR(runner.check(res));
  } else {
    res.check = "off";
  }
  res.check_s = seconds_since(t0);
  return res;
}

}  // namespace spattn::cuda
