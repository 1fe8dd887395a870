// The per-token hot path allocates nothing: after one warm-up step, decode steps of every model type
// make no call to operator new (this binary counts them while `g_counting` is set).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "model/model.h"
#include "test_util.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_news{0};
}  // namespace

// Under AddressSanitizer, ASan owns operator new; the test is skipped there (see below).
#if !defined(__SANITIZE_ADDRESS__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif

using namespace seek;

class NoAlloc : public ::testing::TestWithParam<std::string> {};

TEST_P(NoAlloc, DecodeStepsAllocateNothing) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "operator new is ASan's in this build";
#endif
  test::TempDir dir;
  write_random_checkpoint(dir.path.string(), test::tiny_config(GetParam()), {DType::BF16, 3, 1});
  auto m = Model::load(dir.path.string());
  const int64_t V = m->config().vocab_size, D = m->config().hidden_size;
  std::vector<float> logits(static_cast<size_t>(V)), hidden(static_cast<size_t>(D));
  for (MlaForm form : {MlaForm::Absorbed, MlaForm::Naive}) {
    KVCache cache = m->new_cache(32, form);
    KVCache mtp = m->new_mtp_cache(32, form);
    const bool has_mtp = m->config().num_nextn_predict_layers > 0;
    int32_t tok = 5;
    // Warm-up: the workspace grows to its decode size (the cache was sized at creation).
    for (int i = 0; i < 2; ++i) {
      m->forward(cache, &tok, 1, logits.data(), false, hidden.data());
      if (has_mtp) m->forward_mtp(0, mtp, hidden.data(), &tok, 1, logits.data());
    }
    g_news = 0;
    g_counting = true;
    for (int i = 0; i < 5; ++i) {
      m->forward(cache, &tok, 1, logits.data(), false, hidden.data());
      if (has_mtp) m->forward_mtp(0, mtp, hidden.data(), &tok, 1, logits.data());
      tok = (tok * 7 + 3) % int32_t(V);
    }
    g_counting = false;
    EXPECT_EQ(g_news.load(), 0) << mla_form_name(form);
  }
}

INSTANTIATE_TEST_SUITE_P(All, NoAlloc, ::testing::Values("deepseek_v3", "deepseek_v2", "qwen2", "llama"));
