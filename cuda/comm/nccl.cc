#include "cuda/comm/nccl.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>

#include "cuda/check.h"
#ifdef SPATTN_WITH_MPI
#include <mpi.h>
#endif

namespace spattn::cuda {

Status nccl_status(ncclResult_t r, const char* call, const char* file, int line) {
  if (r == ncclSuccess) return {};
  return internal_error(std::string(call) + " failed at " + file + ":" + std::to_string(line) +
                        ": " + ncclGetErrorString(r));
}

std::string nccl_version() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "unknown";
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100);
}

Expected<Communicators> Communicators::create(const core::Plan& plan,
                                              const std::vector<int>& local_ranks,
                                              const std::vector<int>& devices, bool use_mpi) {
  // NVLink multicast stays off on shared machines (see the device notes); respect a caller's value.
  setenv("NCCL_NVLS_ENABLE", "0", 0);
  std::vector<ncclUniqueId> ids(plan.groups.size());
  if (!use_mpi) {
    for (ncclUniqueId& id : ids) SPATTN_NCCL_CHECK(ncclGetUniqueId(&id));
  } else {
#ifdef SPATTN_WITH_MPI
    int me = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    if (me == 0)
      for (ncclUniqueId& id : ids) SPATTN_NCCL_CHECK(ncclGetUniqueId(&id));
    MPI_Bcast(ids.data(), static_cast<int>(ids.size() * sizeof(ncclUniqueId)), MPI_BYTE, 0,
              MPI_COMM_WORLD);
#else
    return unavailable(
        "this build has no MPI support (OpenMPI's mpi.h was not found at configure time)");
#endif
  }
  Communicators c;
  for (std::size_t g = 0; g < plan.groups.size(); ++g) {
    const std::vector<int>& members = plan.groups[g];
    SPATTN_NCCL_CHECK(ncclGroupStart());
    for (std::size_t i = 0; i < local_ranks.size(); ++i) {
      const int r = local_ranks[i];
      auto it = std::find(members.begin(), members.end(), r);
      if (it == members.end()) continue;
      SPATTN_CUDA_CHECK(cudaSetDevice(devices[i]));
      ncclComm_t comm = nullptr;
      SPATTN_NCCL_CHECK(ncclCommInitRank(&comm, static_cast<int>(members.size()), ids[g],
                                         static_cast<int>(it - members.begin())));
      c.comms_[{static_cast<int>(g), r}] = comm;
    }
    SPATTN_NCCL_CHECK(ncclGroupEnd());
  }
  return c;
}

Status Communicators::async_error() const {
  for (const auto& [key, comm] : comms_) {
    ncclResult_t r = ncclSuccess;
    SPATTN_NCCL_CHECK(ncclCommGetAsyncError(comm, &r));
    if (r != ncclSuccess && r != ncclInProgress)
      return internal_error("NCCL communicator of group " + std::to_string(key.first) +
                            " on rank " + std::to_string(key.second) + ": " +
                            ncclGetErrorString(r));
  }
  return {};
}

void Communicators::abort() {
  for (auto& [key, comm] : comms_) ncclCommAbort(comm);
  comms_.clear();
}

Communicators::~Communicators() {
  for (auto& [key, comm] : comms_) ncclCommDestroy(comm);
}

}  // namespace spattn::cuda
