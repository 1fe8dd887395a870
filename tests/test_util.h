// test_util.h — helpers shared by seek's tests: a scratch directory that removes itself, small
// model configs of every type, a random tiny checkpoint writer, and a quiet child process.
#pragma once
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/random_checkpoint.h"

namespace seek::test {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "seek-test-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline std::string data_path(const std::string& rel) { return std::string(SEEK_TEST_DATA) + "/" + rel; }

// A file's bytes ("" for a file that cannot be read).
inline std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

// Tiny configs, one per model type, small enough for exhaustive checks.
inline nlohmann::json tiny_config(const std::string& type) {
  using nlohmann::json;
  if (type == "deepseek_v3" || type == "deepseek_v2") {
    json j = {{"model_type", type}, {"vocab_size", 97}, {"hidden_size", 48}, {"intermediate_size", 80},
              {"num_hidden_layers", 3}, {"num_attention_heads", 3}, {"q_lora_rank", 24}, {"kv_lora_rank", 16},
              {"qk_nope_head_dim", 8}, {"qk_rope_head_dim", 6}, {"v_head_dim", 10}, {"n_routed_experts", 8},
              {"n_shared_experts", 1}, {"num_experts_per_tok", 3}, {"n_group", 4}, {"topk_group", 2},
              {"moe_intermediate_size", 16}, {"first_k_dense_replace", 1}, {"rms_norm_eps", 1e-6},
              {"rope_theta", 10000.0}, {"max_position_embeddings", 256}};
    if (type == "deepseek_v3") {
      j.update({{"scoring_func", "sigmoid"}, {"topk_method", "noaux_tc"}, {"norm_topk_prob", true},
                {"routed_scaling_factor", 2.5}, {"num_nextn_predict_layers", 1},
                {"rope_scaling", {{"type", "yarn"}, {"factor", 8.0}, {"original_max_position_embeddings", 16},
                                  {"beta_fast", 32}, {"beta_slow", 1}, {"mscale", 0.9}, {"mscale_all_dim", 0.8}}}});
    } else {
      j.update({{"q_lora_rank", nullptr}, {"scoring_func", "softmax"}, {"topk_method", "group_limited_greedy"},
                {"norm_topk_prob", false}, {"routed_scaling_factor", 1.0}, {"moe_layer_freq", 2}, {"n_shared_experts", 2}});
    }
    return j;
  }
  json j = {{"model_type", type}, {"vocab_size", 101}, {"hidden_size", 32}, {"intermediate_size", 72},
            {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
            {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"max_position_embeddings", 256}};
  if (type == "llama") {
    j.update({{"num_key_value_heads", 1}, {"head_dim", 12}, {"tie_word_embeddings", true},
              {"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                                {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 32}}}});
  }
  return j;
}

// Starts args[0] with args (stderr to /dev/null, so progress lines stay out of the test log) and
// returns its pid, for a test that kills it or waits for it.
inline pid_t spawn_quiet(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  EXPECT_EQ(posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

}  // namespace seek::test
