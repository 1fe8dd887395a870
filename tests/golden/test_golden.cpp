// Golden tests: seek's forward pass against the independent PyTorch reference (scripts/reference/),
// layer by layer, on the committed random tiny checkpoints of tests/golden/data/<case>/. The reference
// computes in float64; the error measure is max |a - b| / max |b| per tensor (util/compare.h).
//
// Bounds (issue 2): logits ≤ 1e-4 for f32 weights, ≤ 2e-2 for bf16 / fp8 weights. Every tensor of the
// trace is compared with the same bound as the logits, and the worst error of each is printed.
#include <gtest/gtest.h>

#include <filesystem>

#include "model/model.h"
#include "model/safetensors.h"
#include "test_util.h"
#include "util/compare.h"

using namespace seek;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> golden_cases() {
  std::vector<std::string> out;
  fs::path root = test::data_path("golden/data");
  if (!fs::exists(root)) return out;
  for (const auto& e : fs::directory_iterator(root))
    if (fs::exists(e.path() / "golden.safetensors")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Weight storage of a case decides its bound.
double bound_for(const Config& c, const Checkpoint& ck) {
  const TensorInfo& t = ck.get("model.embed_tokens.weight");
  return (t.dtype == DType::F32 && !c.fp8) ? 1e-4 : 2e-2;
}

std::vector<float> as_f32(const TensorInfo& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  if (t.dtype == DType::I32)
    for (int64_t i = 0; i < t.numel(); ++i) v[size_t(i)] = float(static_cast<const int32_t*>(t.data)[i]);
  else
    to_f32(t.dtype, t.data, v.data(), v.size());
  return v;
}

class Golden : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(Golden, MatchesReferenceLayerByLayer) {
  const std::string dir = test::data_path("golden/data/" + GetParam());
  auto m = Model::load(dir);
  const Config& c = m->config();
  SafetensorsFile g(dir + "/golden.safetensors");
  const TensorInfo* ids_t = g.find("input_ids");
  ASSERT_NE(ids_t, nullptr);
  std::vector<int32_t> ids(static_cast<size_t>(ids_t->numel()));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(as_f32(*ids_t)[i]);
  const int64_t T = int64_t(ids.size()), V = c.vocab_size, D = c.hidden_size;
  const double bound = bound_for(c, *m->checkpoint());

  for (MlaForm form : {MlaForm::Absorbed, MlaForm::Naive}) {
    if (!c.is_mla() && form == MlaForm::Naive) continue;
    ActivationTrace trace;
    std::vector<float> logits(static_cast<size_t>(T * V)), hidden(static_cast<size_t>(T * D));
    KVCache cache = m->new_cache(T, form);
    m->forward(cache, ids.data(), T, logits.data(), true, hidden.data(), &trace);
    if (c.num_nextn_predict_layers > 0) {
      std::vector<float> mtp(static_cast<size_t>((T - 1) * V));
      KVCache mc = m->new_mtp_cache(T, form);
      m->forward_mtp(0, mc, hidden.data(), ids.data() + 1, T - 1, mtp.data(), nullptr, &trace);
    }
    int compared = 0;
    double worst = 0;
    std::string worst_name;
    for (const auto& [name, t] : g.tensors()) {
      if (name == "input_ids") continue;
      auto it = trace.values.find(name);
      ASSERT_NE(it, trace.values.end()) << "seek does not produce golden tensor " << name;
      std::vector<float> want = as_f32(t);
      ASSERT_EQ(it->second.size(), want.size()) << name;
      if (name.find("topk_idx") != std::string::npos) {
        EXPECT_EQ(it->second, want) << name << ": a different expert was chosen";
        continue;
      }
      double err = max_rel_diff(it->second.data(), want.data(), int64_t(want.size()));
      EXPECT_LE(err, bound) << GetParam() << " " << mla_form_name(form) << " " << name;
      if (err > worst) worst = err, worst_name = name;
      ++compared;
    }
    EXPECT_GT(compared, 3);
    double logits_err = max_rel_diff(logits.data(), as_f32(*g.find("logits")).data(), T * V);
    std::printf("[golden] %-12s %-8s logits %.2e  worst %.2e (%s) over %d tensors, bound %.0e\n", GetParam().c_str(),
                mla_form_name(form), logits_err, worst, worst_name.c_str(), compared, bound);
  }
}

INSTANTIATE_TEST_SUITE_P(Reference, Golden, ::testing::ValuesIn(golden_cases()),
                         [](const auto& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Golden);

TEST(GoldenData, AllFourModelTypesPresent) {
  std::set<std::string> types;
  for (const std::string& c : golden_cases()) types.insert(load_config(test::data_path("golden/data/" + c)).model_type_name);
  for (const char* t : {"deepseek_v3", "deepseek_v2", "qwen2", "llama"}) EXPECT_TRUE(types.count(t)) << "no golden case for " << t;
}
