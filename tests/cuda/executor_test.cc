// The GPU executor on this machine's GPUs: every plan kind for worlds 1, 2, 4 (8 for packed
// documents; past the GPU count every rank on GPU 0, ExecOptions::one_gpu) matches the
// double-precision reference within the dtype's tolerance, the measured memory is at least the
// plan's buffers, and two runs give bit-identical outputs.
#include "cuda/executor.h"

#include <gtest/gtest.h>

#include "core/documents.h"
#include "planner/planner.h"
#include "tests/cuda/gpu_util.h"

namespace spattn::cuda {
namespace {

core::Problem awkward(bool causal, core::JointStrategy joint) {
  core::Problem p;
  p.batch = 2;
  p.q_heads = 6;
  p.kv_heads = 2;  // GQA, fewer kv heads than 4 GPUs: Ulysses shares them
  p.head_dim = 64;
  p.seq_len = 1021;  // pads for every world size
  p.joint_len = 77;
  p.joint_strategy = joint;
  p.causal = causal;
  return p;
}

// One untimed iteration; a world larger than the machine's GPUs runs every rank on GPU 0 with
// transfers as device copies (ExecOptions::one_gpu), so every plan kind is checked on one GPU.
ExecOptions one_iteration(int world) {
  ExecOptions opt;
  opt.warmup = 0;
  opt.iterations = 1;
  opt.one_gpu = world > *device_count();
  return opt;
}

TEST(Executor, EveryPlanOfEveryWorldMatchesTheReference) {
  SPATTN_REQUIRE_GPU();
  const int gpus = *device_count();
  for (int world = 1; world <= std::max(gpus, 4); world *= 2) {
    const ExecOptions opt = one_iteration(world);
    for (bool causal : {false, true}) {
      const core::Problem p =
          awkward(causal, causal ? core::JointStrategy::kBack : core::JointStrategy::kFront);
      for (const core::PlanChoice& c : planner::enumerate_choices(world)) {
        SCOPED_TRACE(c.name() + (causal ? " causal" : ""));
        Expected<core::Plan> plan = planner::make_plan(p, c);
        ASSERT_TRUE(plan.ok()) << plan.status().message();
        Expected<ExecResult> r = execute(*plan, opt);
        ASSERT_TRUE(r.ok()) << r.status().message();
        EXPECT_EQ(r->check, "whole");
        EXPECT_TRUE(r->check_passed)
            << "out error " << r->out_error << ", lse error " << r->lse_error;
        EXPECT_EQ(r->device.find("every rank on GPU 0") != std::string::npos, opt.one_gpu)
            << r->device;
        for (std::size_t i = 0; i < r->measured_bytes.size(); ++i)
          EXPECT_GE(r->measured_bytes[i], r->predicted_bytes[i]);
        EXPECT_EQ(static_cast<int>(r->timeline.spans.size()), static_cast<int>(plan->tasks.size()));
        EXPECT_GT(r->median_ms, 0.0);
      }
    }
  }
}

TEST(Executor, StreamingPlansMatchTheBlockCausalReference) {
  SPATTN_REQUIRE_GPU();
  core::Problem p;
  p.q_heads = p.kv_heads = 12;
  p.head_dim = 128;
  p.frame_seqlen = 60;
  p.chunk_len = 180;
  p.seq_len = 60 * 7;
  p.max_attention_size = 300;
  p.sink_tokens = 20;
  for (std::int64_t cache : {0, 180})  // and after a pre-filled cache of one chunk
    for (int world = 1; world <= 4; world *= 2) {
      const ExecOptions opt = one_iteration(world);
      for (const core::PlanChoice& c : planner::enumerate_choices(world)) {
        SCOPED_TRACE(c.name() + " cache_len " + std::to_string(cache));
        p.cache_len = cache;
        Expected<core::Plan> plan = planner::make_plan(p, c);
        ASSERT_TRUE(plan.ok()) << plan.status().message();
        Expected<ExecResult> r = execute(*plan, opt);
        ASSERT_TRUE(r.ok()) << r.status().message();
        EXPECT_TRUE(r->check_passed)
            << "out error " << r->out_error << ", lse error " << r->lse_error;
      }
    }
}

// System: packed documents (lengths 1 to 300, boundaries inside tiles and shards, a one-token
// document), causal and not, GQA, under every plan of every world size the GPUs allow (the
// balanced ring layout among them). Expectation: the reference's output and LSE within the
// dtype's tolerance, through each block's own boundaries in the kernel.
TEST(Executor, PackedDocumentPlansMatchTheReference) {
  SPATTN_REQUIRE_GPU();
  core::Problem p;
  p.q_heads = 8;
  p.kv_heads = 2;
  p.head_dim = 128;
  p.doc_bounds = core::document_bounds({300, 1, 129, 64, 250, 7, 273});
  p.seq_len = p.doc_bounds.back();
  for (int world = 1; world <= 8; world *= 2)
    for (bool causal : {false, true}) {
      p.causal = causal;
      const ExecOptions opt = one_iteration(world);
      for (const core::PlanChoice& c : planner::enumerate_choices(world)) {
        SCOPED_TRACE(c.name() + (causal ? " causal" : ""));
        Expected<core::Plan> plan = planner::make_plan(p, c);
        ASSERT_TRUE(plan.ok()) << plan.status().message();
        Expected<ExecResult> r = execute(*plan, opt);
        ASSERT_TRUE(r.ok()) << r.status().message();
        EXPECT_TRUE(r->check_passed)
            << "out error " << r->out_error << ", lse error " << r->lse_error;
      }
    }
}

TEST(Executor, TwoRunsAreBitIdentical) {
  SPATTN_REQUIRE_GPU();
  const int world = std::min(*device_count(), 4);
  Expected<core::Plan> plan =
      planner::make_plan(awkward(true, core::JointStrategy::kFront),
                         {world > 1 ? core::Scheme::kRing : core::Scheme::kUlysses, 1, world,
                          core::RingLayout::kZigzag});
  ASSERT_TRUE(plan.ok());
  Expected<ExecResult> a = execute(*plan, {});
  Expected<ExecResult> b = execute(*plan, {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->output_digest, b->output_digest);
}

TEST(Executor, APlanThatDoesNotFitIsRefusedWithBothNumbers) {
  SPATTN_REQUIRE_GPU();
  core::Problem p = awkward(false, core::JointStrategy::kFront);
  p.seq_len = 1 << 26;  // 64M tokens: q alone is 4 x 64M x 6 x 64 x 2 B = 206 GB, over any GPU
  p.batch = 4;
  Expected<core::Plan> plan = planner::make_plan(p, {core::Scheme::kUlysses, 1, 1});
  ASSERT_TRUE(plan.ok());
  Expected<ExecResult> r = execute(*plan, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInfeasible);
  EXPECT_NE(r.status().message().find("GiB free"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace spattn::cuda
