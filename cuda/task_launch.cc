#include "cuda/task_launch.h"

#include <string>

#include "cuda/convert.h"

namespace spattn::cuda {

core::DType elem_dtype(const core::Plan& plan, const core::Buffer& b) {
  return b.elem == core::ElemType::kF32 ? core::DType::kF32 : plan.problem.dtype;
}

TensorView view_at(const core::Plan& plan, const core::View& v, void* base) {
  const core::Buffer& b = plan.buffers[static_cast<std::size_t>(v.buffer)];
  TensorView t;
  t.dtype = elem_dtype(plan, b);
  const std::int64_t at = (v.token_offset * b.heads + v.head_offset) * b.width;
  t.data = static_cast<char*>(base) + at * core::dtype_bytes(t.dtype);
  t.batch = b.batch;
  t.tokens = v.tokens;
  t.heads = v.heads;
  t.width = b.width;
  t.batch_stride = b.tokens * b.heads * b.width;
  t.token_stride = b.heads * b.width;
  t.head_stride = b.width;
  return t;
}

Status launch_task(const core::Plan& plan, const core::Task& t,
                   const std::function<void*(core::BufferId)>& base, const std::int64_t* doc_bounds,
                   void* stream) {
  auto tview = [&](const core::View& v) { return view_at(plan, v, base(v.buffer)); };
  const core::Problem& p = plan.problem;
  if (const auto* a = std::get_if<core::AttnBlock>(&t.op)) {
    FlashParams f;
    f.dtype = p.dtype;
    const TensorView q = tview(a->q), o = tview(a->out), l = tview(a->lse);
    f.q = q.data;
    f.q_batch_stride = q.batch_stride;
    f.q_token_stride = q.token_stride;
    f.q_head_stride = q.head_stride;
    f.nq = q.tokens;
    f.q_start = a->q_start;
    f.q_stride = a->q_stride;
    f.q_head_start = a->q_head_start;
    if (a->kv.size() > static_cast<std::size_t>(kMaxKvSegments))
      return internal_error("attention block with " + std::to_string(a->kv.size()) +
                            " key segments");
    for (std::size_t i = 0; i < a->kv.size(); ++i) {
      const TensorView k = tview(a->kv[i].k), v = tview(a->kv[i].v);
      FlashKvSegment& s2 = f.kv[i];
      s2.k = k.data;
      s2.v = v.data;
      s2.k_batch_stride = k.batch_stride;
      s2.k_token_stride = k.token_stride;
      s2.k_head_stride = k.head_stride;
      s2.v_batch_stride = v.batch_stride;
      s2.v_token_stride = v.token_stride;
      s2.v_head_stride = v.head_stride;
      s2.nk = k.tokens;
      s2.joint = a->kv[i].joint || a->kv[i].unmasked;  // the kernel applies no mask to either
      s2.start = a->kv[i].start;
      s2.stride = a->kv[i].stride;
      s2.kv_head_start = a->kv_head_start;
    }
    f.num_segments = static_cast<int>(a->kv.size());
    f.out = o.data;
    f.out_f32 = o.dtype == core::DType::kF32;
    f.out_batch_stride = o.batch_stride;
    f.out_token_stride = o.token_stride;
    f.out_head_stride = o.head_stride;
    f.lse = static_cast<float*>(l.data);
    f.lse_batch_stride = l.batch_stride;
    f.lse_token_stride = l.token_stride;
    f.lse_head_stride = l.head_stride;
    f.batch = p.batch;
    f.hq = q.heads;
    f.head_dim = p.head_dim;
    f.group = p.group();
    f.scale = static_cast<float>(p.softmax_scale());
    f.softcap = static_cast<float>(p.softcap);
    f.causal = p.causal;
    f.window_left = p.window.left;
    f.window_right = p.window.right;
    if (!a->doc_bounds.empty()) {
      if (doc_bounds == nullptr) return internal_error("launch_task: a block's doc_bounds missing");
      f.doc_bounds = doc_bounds;
      f.num_doc_bounds = static_cast<int>(a->doc_bounds.size());
    }
    return flash_attention_forward(f, stream);
  }
  if (const auto* m = std::get_if<core::Merge>(&t.op))
    return lse_merge(tview(m->out), tview(m->lse), tview(m->part_out), tview(m->part_lse), stream);
  if (const auto* c = std::get_if<core::Copy>(&t.op)) {
    const TensorView dst = tview(c->dst), src = tview(c->src);
    return dst.dtype == src.dtype ? copy_view(dst, src, stream) : convert_view(dst, src, stream);
  }
  if (const auto* f = std::get_if<core::Fill>(&t.op))
    return fill_view(tview(f->dst), f->value, stream);
  return internal_error("launch: not a compute task");
}

}  // namespace spattn::cuda
