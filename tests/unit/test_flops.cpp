// Training FLOPs per token against hand counts on the tiny configs (tests/test_util.h): every GEMM
// written out with the config's numbers, independently of src/train/flops.cpp.
#include <gtest/gtest.h>

#include "model/config.h"
#include "test_util.h"
#include "train/flops.h"
#include "util/error.h"

using namespace seek;

TEST(Flops, TinyDeepseekV3ByHand) {
  const Config c = parse_config(test::tiny_config("deepseek_v3"), "tiny-v3");
  // D 48, V 97, F 80, L 3 (layer 0 dense, 1 and 2 MoE), H 3, q_lora 24, C 16, nope 8, R 6 (qk 14), v 10,
  // E 8, k 3, F_moe 16, 1 shared expert, one MTP module (layer 3: MoE).
  const double attn = 48 * 24 + 24 * 3 * 14   // q_a_proj, q_b_proj
                      + 48 * (16 + 6)         // kv_a_proj_with_mqa
                      + 16 * 3 * (8 + 10)     // kv_b_proj
                      + 3 * 10 * 48;          // o_proj
  EXPECT_EQ(attn, 5520);
  const double dense = 3 * 48 * 80;
  const double moe = 48 * 8 + 3 * (3 * 48 * 16) + 3 * 48 * 16;  // router, 3 routed experts, shared expert
  const double head = 48 * 97;
  const int64_t T = 4;
  const double core = 2 * 3 * (14 + 10) * (T + 1) / 2.0;  // per block: Q·Kᵀ + P·V over 2.5 keys on average
  const double main = 2 * (3 * attn + dense + 2 * moe + head) + 3 * core;
  const double mtp = 2 * (2 * 48 * 48 + attn + moe + head) + core;
  const double forward = main + mtp * 3.0 / 4.0;  // MTP predicts T-1 = 3 of 4 positions
  EXPECT_DOUBLE_EQ(forward, 141798.0);
  EXPECT_DOUBLE_EQ(train::forward_flops_per_token(c, T), forward);
  EXPECT_DOUBLE_EQ(train::train_flops_per_token(c, T), 3 * forward);
  // T = 1: no MTP position, one key.
  EXPECT_DOUBLE_EQ(train::forward_flops_per_token(c, 1), 2 * (3 * attn + dense + 2 * moe + head) + 3 * 2 * 3 * 24);
}

TEST(Flops, TinyDeepseekV2ByHand) {
  const Config c = parse_config(test::tiny_config("deepseek_v2"), "tiny-v2");
  // No q_lora (plain q_proj); moe_layer_freq 2: only layer 2 is MoE; 2 shared experts; no MTP.
  const double attn = 48 * 3 * 14 + 48 * 22 + 16 * 3 * 18 + 3 * 10 * 48;
  const double dense = 3 * 48 * 80, moe = 48 * 8 + 3 * (3 * 48 * 16) + 3 * 48 * (16 * 2), head = 48 * 97;
  const int64_t T = 9;
  const double forward = 2 * (3 * attn + 2 * dense + moe + head) + 3 * (2 * 3 * 24 * 5.0);
  EXPECT_DOUBLE_EQ(train::train_flops_per_token(c, T), 3 * forward);
}

TEST(Flops, TinyQwen2GqaByHand) {
  const Config c = parse_config(test::tiny_config("qwen2"), "tiny-qwen2");
  // D 32, V 101, F 72, L 2, H 4, G 2, head_dim 8; q/k/v biases are adds, not counted.
  const double attn = 32 * 4 * 8 + 2 * (32 * 2 * 8) + 4 * 8 * 32;
  const double mlp = 3 * 32 * 72, head = 32 * 101;
  const int64_t T = 4;
  const double forward = 2 * (2 * (attn + mlp) + head) + 2 * (2 * 4 * (8 + 8) * 2.5);
  EXPECT_DOUBLE_EQ(forward, 47040.0);
  EXPECT_DOUBLE_EQ(train::train_flops_per_token(c, T), 3 * forward);
  EXPECT_THROW(train::train_flops_per_token(c, 0), Error);
}
