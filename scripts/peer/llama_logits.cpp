// llama_logits.cpp — a peer tool, built against a llama.cpp checkout by make_gguf_models.sh (never part
// of seek's build): the logits llama.cpp computes for a fixed token sequence, and its greedy continuation.
//
//   llama_logits MODEL.gguf OUT.f32 TOKENS...        every position's logits, [n_tokens, n_vocab] f32
//   llama_logits MODEL.gguf --greedy N TOKENS...     prints the N greedy next tokens, space-separated
//
// The tokens are decoded in one batch from an empty cache, on the CPU, with an f32 KV cache and no flash
// attention, so that an F32 model is computed in f32 throughout.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "llama.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL.gguf OUT.f32|--greedy N TOKENS...\n", argv[0]);
    return 2;
  }
  const bool greedy = std::strcmp(argv[2], "--greedy") == 0;
  int first = greedy ? 4 : 3;
  const int n_new = greedy ? std::atoi(argv[3]) : 0;
  std::vector<llama_token> toks;
  for (int i = first; i < argc; i++) toks.push_back(std::atoi(argv[i]));

  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) {
    std::fprintf(stderr, "cannot load %s\n", argv[1]);
    return 1;
  }
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = 512;
  cp.n_batch = 512;
  cp.n_ubatch = 512;
  cp.n_threads = 1;
  cp.n_threads_batch = 1;
  cp.type_k = GGML_TYPE_F32;  // the default f16 cache would round every key and value (~1e-3 relative)
  cp.type_v = GGML_TYPE_F32;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  llama_context* ctx = llama_init_from_model(model, cp);
  const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

  llama_batch batch = llama_batch_init(int(toks.size()) + n_new, 0, 1);
  for (size_t i = 0; i < toks.size(); i++) {
    batch.token[i] = toks[i];
    batch.pos[i] = llama_pos(i);
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = 0;
    batch.logits[i] = 1;
  }
  batch.n_tokens = int(toks.size());
  if (llama_decode(ctx, batch) != 0) {
    std::fprintf(stderr, "llama_decode failed\n");
    return 1;
  }
  if (!greedy) {
    FILE* f = std::fopen(argv[2], "wb");
    for (size_t i = 0; i < toks.size(); i++) std::fwrite(llama_get_logits_ith(ctx, int(i)), 4, size_t(n_vocab), f);
    std::fclose(f);
    std::printf("%zu x %d logits -> %s\n", toks.size(), n_vocab, argv[2]);
  } else {
    int pos = int(toks.size());
    int last = int(toks.size()) - 1;
    for (int s = 0; s < n_new; s++) {
      const float* l = llama_get_logits_ith(ctx, last);
      int best = 0;
      for (int v = 1; v < n_vocab; v++)
        if (l[v] > l[best]) best = v;
      std::printf(s ? " %d" : "%d", best);
      batch.n_tokens = 1;
      batch.token[0] = best;
      batch.pos[0] = pos++;
      batch.n_seq_id[0] = 1;
      batch.seq_id[0][0] = 0;
      batch.logits[0] = 1;
      if (llama_decode(ctx, batch) != 0) return 1;
      last = 0;
    }
    std::printf("\n");
  }
  llama_batch_free(batch);
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
