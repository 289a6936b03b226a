// cuda/flash_internal.h: the FlashParams -> kernel params conversion, shared by flash_api.cu and
// the tuning tool (cuda/tools/attn_tune.cu). Internal to cuda/.
#pragma once

#include "cuda/attention.h"
#include "cuda/kernels/flash_fwd/params.h"

namespace spattn::cuda {

// Requires can_implement(p).ok(); drops empty key segments; folds scale and softcap into the
// kernel's exp2-domain constants.
flash::FwdParams to_fwd_params(const FlashParams& p);

}  // namespace spattn::cuda
