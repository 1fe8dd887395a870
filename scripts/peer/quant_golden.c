// quant_golden.c — golden fixtures for seek's Q8_0 / Q4_0 / Q5_0 / Q5_1 / Q4_K / Q5_K / Q6_K (src/tensor/quant.h), made by
// llama.cpp's ggml itself: its reference quantizers (quantize_row_*_ref) and dequantizers
// (dequantize_row_*), called through libggml-base. Built and run by make_quant_golden.sh.
//
// Usage: quant_golden OUT_DIR
// Writes OUT_DIR/input.bin (the f32 rows) and OUT_DIR/<q8_0|q4_0|q5_0|q5_1|q4_k|q5_k|q6_k>.bin (ggml's blocks and its
// dequantized floats); the format is described in tests/data/quant/README.md. All little-endian.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-quants.h"

enum { kRows = 8, kCols = 512 };

// xorshift64* and Box-Muller: any deterministic source will do (the inputs are stored, not regenerated).
static uint64_t g_state = 0x9E3779B97F4A7C15ull;
static double uniform01(void) {
  g_state ^= g_state >> 12;
  g_state ^= g_state << 25;
  g_state ^= g_state >> 27;
  return ((g_state * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}
static float normal(void) {
  double u = uniform01(), v = uniform01();
  if (u < 1e-300) u = 1e-300;
  return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

// Row r of the inputs: one distribution per row.
static void make_row(int r, float* x) {
  for (int i = 0; i < kCols; i++) {
    switch (r) {
      case 0: x[i] = normal(); break;                                            // normal
      case 1: x[i] = 0.02f * normal() * (uniform01() < 0.01 ? 100.0f : 1.0f); break;  // heavy outliers
      case 2: x[i] = 0.0f; break;                                                // all zeros
      case 3: x[i] = 1e-8f * normal(); break;                                    // tiny values
      case 4: x[i] = normal(); break;                                            // one huge value (below)
      case 5: x[i] = -fabsf(normal()); break;                                    // negative only
      case 6: x[i] = 0.37f; break;                                               // constant
      default: x[i] = normal() * powf(10.0f, (float)(-3.0 + 4.0 * uniform01())); break;  // mixed scales
    }
  }
  if (r == 4) x[137] = 3.0e4f;
}

static void write_or_die(FILE* f, const void* p, size_t n, const char* path) {
  if (fwrite(p, 1, n, f) != n) {
    fprintf(stderr, "quant_golden: cannot write %s\n", path);
    exit(1);
  }
}

static void write_header(FILE* f, const char magic[8], uint32_t row_bytes, const char* path) {
  const uint32_t h[4] = {kRows, kCols, row_bytes, 0};
  write_or_die(f, magic, 8, path);
  write_or_die(f, h, sizeof h, path);
}

typedef void (*quantize_fn)(const float*, void*, int64_t);
typedef void (*dequantize_fn)(const void*, float*, int64_t);

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: quant_golden OUT_DIR\n");
    return 2;
  }
  static float in[kRows][kCols], out[kRows][kCols];
  static uint8_t q[kRows][kCols / 32 * 34];
  for (int r = 0; r < kRows; r++) make_row(r, in[r]);

  char path[4096];
  snprintf(path, sizeof path, "%s/input.bin", argv[1]);
  FILE* f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "quant_golden: cannot open %s\n", path);
    return 1;
  }
  write_header(f, "SEEKQIN1", 0, path);
  write_or_die(f, in, sizeof in, path);
  fclose(f);

  const struct {
    const char* name;
    uint32_t block_values, block_bytes;
    quantize_fn quantize;
    dequantize_fn dequantize;
  } formats[] = {
      {"q8_0", 32, 34, (quantize_fn)quantize_row_q8_0_ref, (dequantize_fn)dequantize_row_q8_0},
      {"q4_0", 32, 18, (quantize_fn)quantize_row_q4_0_ref, (dequantize_fn)dequantize_row_q4_0},
      {"q5_0", 32, 22, (quantize_fn)quantize_row_q5_0_ref, (dequantize_fn)dequantize_row_q5_0},
      {"q5_1", 32, 24, (quantize_fn)quantize_row_q5_1_ref, (dequantize_fn)dequantize_row_q5_1},
      {"q4_k", 256, 144, (quantize_fn)quantize_row_q4_K_ref, (dequantize_fn)dequantize_row_q4_K},
      {"q5_k", 256, 176, (quantize_fn)quantize_row_q5_K_ref, (dequantize_fn)dequantize_row_q5_K},
      {"q6_k", 256, 210, (quantize_fn)quantize_row_q6_K_ref, (dequantize_fn)dequantize_row_q6_K},
  };
  for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
    const uint32_t row_bytes = kCols / formats[i].block_values * formats[i].block_bytes;
    memset(q, 0xAB, sizeof q);  // bytes a quantizer forgot to write would show
    for (int r = 0; r < kRows; r++) {
      formats[i].quantize(in[r], q[r], kCols);
      formats[i].dequantize(q[r], out[r], kCols);
    }
    snprintf(path, sizeof path, "%s/%s.bin", argv[1], formats[i].name);
    f = fopen(path, "wb");
    if (!f) {
      fprintf(stderr, "quant_golden: cannot open %s\n", path);
      return 1;
    }
    write_header(f, "SEEKQGG1", row_bytes, path);
    for (int r = 0; r < kRows; r++) write_or_die(f, q[r], row_bytes, path);
    write_or_die(f, out, sizeof out, path);
    fclose(f);
  }
  return 0;
}
