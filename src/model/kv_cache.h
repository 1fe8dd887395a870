// kv_cache.h — the per-sequence attention cache, one entry per layer.
//
// Layouts (per layer, `capacity` positions):
//   absorbed MLA: k = latent [cap, C + R] (c_kv normalized, then k_pe roped); v unused.
//                 576 values per token per layer for V2/V3.
//   naive MLA:    k = [cap, H, nope + R] (k_nope from kv_b_proj, then the shared k_pe), v = [cap, H, v]
//   GQA:          k = [cap, G, hd] (roped), v = [cap, G, hd]
// The cache is allocated once at its capacity; appending never allocates.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "nn/attention.h"  // LayerCache, MlaForm

namespace seek {

struct KVCache {
  int64_t len = 0;       // positions filled
  int64_t capacity = 0;  // positions allocated
  MlaForm form = MlaForm::Absorbed;
  std::vector<LayerCache> layers;

  // n_layers layers sized for cfg; `form` matters only for MLA models.
  KVCache(const Config& cfg, int64_t n_layers, int64_t capacity, MlaForm form);
  KVCache() = default;
  void clear() { len = 0; }
  // Forgets every position from n on (a rejected speculative draft); what was written there is
  // overwritten by the next append.
  void truncate(int64_t n);
  size_t bytes() const;
  // Values stored per token per layer for this config and form.
  static int64_t values_per_token(const Config& cfg, MlaForm form);
};

}  // namespace seek
