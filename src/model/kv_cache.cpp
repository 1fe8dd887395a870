#include "model/kv_cache.h"

#include "util/error.h"

namespace seek {

int64_t KVCache::values_per_token(const Config& c, MlaForm form) {
  if (!c.is_mla()) return 2 * c.num_key_value_heads * c.head_dim;
  if (form == MlaForm::Absorbed) return c.kv_lora_rank + c.qk_rope_head_dim;
  return c.num_attention_heads * (c.qk_head_dim() + c.v_head_dim);
}

KVCache::KVCache(const Config& c, int64_t n_layers, int64_t cap, MlaForm f) : capacity(cap), form(f) {
  layers.resize(size_t(n_layers));
  size_t kn, vn;
  if (!c.is_mla()) {
    kn = vn = size_t(c.num_key_value_heads * c.head_dim);
  } else if (f == MlaForm::Absorbed) {
    kn = size_t(c.kv_lora_rank + c.qk_rope_head_dim);
    vn = 0;
  } else {
    kn = size_t(c.num_attention_heads * c.qk_head_dim());
    vn = size_t(c.num_attention_heads * c.v_head_dim);
  }
  for (LayerCache& l : layers) {
    l.k.assign(kn * size_t(cap), 0.f);
    l.v.assign(vn * size_t(cap), 0.f);
  }
}

void KVCache::truncate(int64_t n) {
  SEEK_ASSERT(n >= 0 && n <= len);
  len = n;
}

size_t KVCache::bytes() const {
  size_t n = 0;
  for (const LayerCache& l : layers) n += (l.k.size() + l.v.size()) * sizeof(float);
  return n;
}

}  // namespace seek
