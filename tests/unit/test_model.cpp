// Whole-model invariants on random tiny checkpoints of every type, written in the real HF layout:
// naive MLA == absorbed MLA, cached step-by-step decode == one full pass, chunked prefill == one
// pass, MTP incremental == MTP full, and each stored dtype loads and runs.
#include <gtest/gtest.h>

#include "model/model.h"
#include "test_util.h"
#include "util/compare.h"
#include "util/error.h"

using namespace seek;

namespace {

std::vector<int32_t> ids_for(int64_t T, int64_t V) {
  std::vector<int32_t> ids;
  for (int64_t t = 0; t < T; ++t) ids.push_back(int32_t((t * 37 + 11) % V));
  return ids;
}

std::vector<float> full_pass(Model& m, const std::vector<int32_t>& ids, MlaForm form, std::vector<float>* hidden = nullptr) {
  const int64_t T = int64_t(ids.size()), V = m.config().vocab_size;
  std::vector<float> logits(static_cast<size_t>(T * V));
  KVCache c = m.new_cache(T, form);
  if (hidden) hidden->resize(size_t(T * m.config().hidden_size));
  m.forward(c, ids.data(), T, logits.data(), true, hidden ? hidden->data() : nullptr);
  return logits;
}

class ModelTypes : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(ModelTypes, CachedDecodeEqualsFullPass) {
  test::TempDir dir;
  write_random_checkpoint(dir.path.string(), test::tiny_config(GetParam()), {DType::F32, 11, 1});
  auto m = Model::load(dir.path.string());
  const int64_t T = 13, V = m->config().vocab_size;
  auto ids = ids_for(T, V);
  for (MlaForm form : {MlaForm::Absorbed, MlaForm::Naive}) {
    std::vector<float> full = full_pass(*m, ids, form);
    // One token at a time.
    std::vector<float> step(static_cast<size_t>(T * V));
    KVCache c = m->new_cache(T, form);
    for (int64_t t = 0; t < T; ++t) m->forward(c, &ids[size_t(t)], 1, &step[size_t(t * V)]);
    EXPECT_LT(max_rel_diff(step.data(), full.data(), T * V), 1e-5) << mla_form_name(form);
    // Chunks of 5, 1 and 7.
    std::vector<float> chunk(static_cast<size_t>(T * V));
    KVCache c2 = m->new_cache(T, form);
    m->forward(c2, ids.data(), 5, chunk.data());
    m->forward(c2, ids.data() + 5, 1, chunk.data() + 5 * V);
    m->forward(c2, ids.data() + 6, 7, chunk.data() + 6 * V);
    EXPECT_LT(max_rel_diff(chunk.data(), full.data(), T * V), 1e-5) << mla_form_name(form);
    // Last-token-only logits equal the last row.
    std::vector<float> last(static_cast<size_t>(V));
    KVCache c3 = m->new_cache(T, form);
    m->forward(c3, ids.data(), T, last.data(), false);
    EXPECT_LT(max_rel_diff(last.data(), &full[size_t((T - 1) * V)], V), 1e-6);
  }
}

TEST_P(ModelTypes, LongPromptPathsAgree) {
  // 150 tokens cross the absorbed form's switch to decompressed prefill (64 new tokens) and the causal
  // query block (128): one full pass, a 70-token chunk followed by single-token decode steps, and (MLA)
  // the naive cache must all give the same logits.
  test::TempDir dir;
  write_random_checkpoint(dir.path.string(), test::tiny_config(GetParam()), {DType::F32, 14, 1});
  auto m = Model::load(dir.path.string());
  const int64_t T = 150, V = m->config().vocab_size;
  auto ids = ids_for(T, V);
  std::vector<float> full = full_pass(*m, ids, MlaForm::Absorbed);
  std::vector<float> mixed(static_cast<size_t>(T * V));
  KVCache c = m->new_cache(T, MlaForm::Absorbed);
  m->forward(c, ids.data(), 70, mixed.data());
  for (int64_t t = 70; t < T; ++t) m->forward(c, &ids[size_t(t)], 1, &mixed[size_t(t * V)]);
  EXPECT_LT(max_rel_diff(mixed.data(), full.data(), T * V), 1e-5);
  if (m->config().is_mla()) {
    std::vector<float> naive = full_pass(*m, ids, MlaForm::Naive);
    EXPECT_LT(max_rel_diff(naive.data(), full.data(), T * V), 1e-5);
  }
}

// In F32 and BF16: the absorbed form reads W_UK and W_UV from kv_b_proj as stored (BF16: decoded, and
// the direct BF16 kernel), the naive form multiplies by it.
TEST_P(ModelTypes, NaiveEqualsAbsorbed) {
  if (GetParam() != "deepseek_v3" && GetParam() != "deepseek_v2") GTEST_SKIP() << "MLA only";
  for (DType t : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(t));
    test::TempDir dir;
    write_random_checkpoint(dir.path.string(), test::tiny_config(GetParam()), {t, 12, 1});
    auto m = Model::load(dir.path.string());
    auto ids = ids_for(17, m->config().vocab_size);
    std::vector<float> a = full_pass(*m, ids, MlaForm::Absorbed), n = full_pass(*m, ids, MlaForm::Naive);
    double err = max_rel_diff(n.data(), a.data(), int64_t(a.size()));
    EXPECT_LT(err, 1e-5);
    EXPECT_GT(err, 0.0) << "the two forms should take different arithmetic paths";
  }
}

TEST_P(ModelTypes, BatchEqualsOneAtATime) {
  // Three sequences with prompts of 5, 1 and 70 tokens (70 takes the long-prefill path) in one batched
  // prefill, then four batched decode steps: each sequence's logits equal running it alone.
  test::TempDir dir;
  write_random_checkpoint(dir.path.string(), test::tiny_config(GetParam()), {DType::F32, 15, 1});
  auto m = Model::load(dir.path.string());
  const int64_t V = m->config().vocab_size;
  const std::vector<int64_t> lens = {5, 1, 70};
  for (MlaForm form : {MlaForm::Absorbed, MlaForm::Naive}) {
    std::vector<std::vector<int32_t>> seqs;
    for (size_t b = 0; b < lens.size(); ++b) {
      auto ids = ids_for(lens[b] + 4, V);
      for (auto& id : ids) id = int32_t((id + 13 * int32_t(b)) % V);
      seqs.push_back(ids);
    }
    std::vector<KVCache> caches;
    for (size_t b = 0; b < lens.size(); ++b) caches.push_back(m->new_cache(80, form));
    std::vector<float> batched(static_cast<size_t>(lens.size() * V));
    std::vector<std::vector<float>> got(lens.size());  // per sequence: logits after each step
    for (int step = 0; step < 5; ++step) {
      std::vector<Model::BatchItem> items;
      for (size_t b = 0; b < lens.size(); ++b) {
        const int64_t start = step == 0 ? 0 : lens[b] + step - 1, n = step == 0 ? lens[b] : 1;
        items.push_back({&caches[b], seqs[b].data() + start, n});
      }
      m->forward_batch(items, batched.data());
      for (size_t b = 0; b < lens.size(); ++b) got[b].insert(got[b].end(), &batched[b * V], &batched[(b + 1) * V]);
    }
    for (size_t b = 0; b < lens.size(); ++b) {
      std::vector<float> alone = full_pass(*m, seqs[b], form);
      for (int step = 0; step < 5; ++step) {
        const int64_t row = lens[b] - 1 + step;
        EXPECT_LT(max_rel_diff(&got[b][size_t(step * V)], &alone[size_t(row * V)], V), 1e-5)
            << mla_form_name(form) << " sequence " << b << " step " << step;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, ModelTypes, ::testing::Values("deepseek_v3", "deepseek_v2", "qwen2", "llama"));

TEST(Model, MtpIncrementalEqualsFull) {
  test::TempDir dir;
  write_random_checkpoint(dir.path.string(), test::tiny_config("deepseek_v3"), {DType::F32, 13, 1});
  auto m = Model::load(dir.path.string());
  const int64_t T = 11, V = m->config().vocab_size, D = m->config().hidden_size;
  auto ids = ids_for(T, V);
  std::vector<float> hidden;
  full_pass(*m, ids, MlaForm::Absorbed, &hidden);
  std::vector<float> full(static_cast<size_t>((T - 1) * V)), step(static_cast<size_t>((T - 1) * V));
  KVCache c = m->new_mtp_cache(T);
  m->forward_mtp(0, c, hidden.data(), ids.data() + 1, T - 1, full.data());
  KVCache s = m->new_mtp_cache(T);
  for (int64_t t = 0; t + 1 < T; ++t) m->forward_mtp(0, s, &hidden[size_t(t * D)], &ids[size_t(t + 1)], 1, &step[size_t(t * V)]);
  EXPECT_LT(max_rel_diff(step.data(), full.data(), (T - 1) * V), 1e-5);
}

TEST(Model, StoredDtypesAgree) {
  // The same random weights stored as f32, bf16, f16 and fp8: each loads, runs, and stays within the
  // precision of its storage of the f32 result. The logit error scales with the mantissa (measured:
  // bf16 1.5e-2, f16 2.1e-3, e4m3 0.26 — 8 bits, 11 bits, 4 bits) plus a few flipped expert choices,
  // so each bound is ~3x its measurement.
  const auto cfg = test::tiny_config("deepseek_v3");
  std::vector<float> ref;
  auto ids = ids_for(9, 97);
  const std::vector<std::pair<DType, double>> cases = {{DType::F32, 0.0}, {DType::BF16, 5e-2}, {DType::F16, 5e-3}, {DType::F8_E4M3, 0.6}};
  for (auto [dt, tol] : cases) {
    test::TempDir dir;
    write_random_checkpoint(dir.path.string(), cfg, {dt, 21, 1});
    auto m = Model::load(dir.path.string());
    std::vector<float> out = full_pass(*m, ids, MlaForm::Absorbed);
    for (float x : out) ASSERT_TRUE(std::isfinite(x));
    if (dt == DType::F32) ref = out;
    else {
      double err = max_rel_diff(out.data(), ref.data(), int64_t(ref.size()));
      std::printf("[dtypes] %s vs f32: %.3e\n", std::string(dtype_name(dt)).c_str(), err);
      EXPECT_LT(err, tol) << dtype_name(dt);
    }
  }
}

TEST(Model, RefusesBadIdsAndOverflow) {
  test::TempDir dir;
  write_random_checkpoint(dir.path.string(), test::tiny_config("qwen2"), {DType::F32, 1, 1});
  auto m = Model::load(dir.path.string());
  std::vector<float> logits(static_cast<size_t>(4 * m->config().vocab_size));
  KVCache c = m->new_cache(3);
  int32_t bad[2] = {1, int32_t(m->config().vocab_size)};
  EXPECT_THROW(m->forward(c, bad, 2, logits.data()), Error);
  int32_t ok[4] = {1, 2, 3, 4};
  EXPECT_THROW(m->forward(c, ok, 4, logits.data()), Error);  // capacity 3
  EXPECT_NO_THROW(m->forward(c, ok, 3, logits.data()));
}
