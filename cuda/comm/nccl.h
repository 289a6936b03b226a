// cuda/comm/nccl.h: NCCL communicators for a plan's groups, and grouped point-to-point transfers.
// One process may own several ranks (one GPU each); under MPI each process owns one and the
// unique ids travel by MPI_Bcast. Internal to cuda/ (includes nccl.h).
#pragma once

#include <nccl.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/plan.h"
#include "core/status.h"

namespace spattn::cuda {

Status nccl_status(ncclResult_t r, const char* call, const char* file, int line);

#define SPATTN_NCCL_CHECK(call)                                                               \
  do {                                                                                        \
    const ncclResult_t _r = (call);                                                           \
    if (_r != ncclSuccess) return ::spattn::cuda::nccl_status(_r, #call, __FILE__, __LINE__); \
  } while (0)

class Communicators {
 public:
  // Creates one communicator per (group, local rank in it). `device_of(rank)` is the rank's GPU.
  // With use_mpi, ids are broadcast from MPI rank 0; otherwise all ranks are local.
  static Expected<Communicators> create(const core::Plan& plan, const std::vector<int>& local_ranks,
                                        const std::vector<int>& devices, bool use_mpi);
  Communicators() = default;
  Communicators(Communicators&& o) noexcept : comms_(std::move(o.comms_)) { o.comms_.clear(); }
  Communicators& operator=(Communicators&& o) noexcept {
    std::swap(comms_, o.comms_);
    return *this;
  }
  Communicators(const Communicators&) = delete;
  Communicators& operator=(const Communicators&) = delete;
  ~Communicators();

  ncclComm_t get(int group, int rank) const { return comms_.at({group, rank}); }
  // The first asynchronous error of any communicator (ok when none).
  Status async_error() const;
  // Aborts every communicator (after a timeout); they are unusable afterwards.
  void abort();

 private:
  std::map<std::pair<int, int>, ncclComm_t> comms_;  // (group, global rank) -> communicator
};

std::string nccl_version();

}  // namespace spattn::cuda
