// ranks.h — tests of data and expert parallelism without mpiexec: a group of in-process ranks on
// threads (util/comm.h), and how far two trained models are apart.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "model/safetensors.h"
#include "util/comm.h"

namespace seek::test {

// Runs body(comm) on every rank of an in-process group of n, one thread each; returns the ranks' error
// messages ("" where none was thrown).
inline std::vector<std::string> on_ranks(int n, const std::function<void(Communicator&)>& body) {
  std::vector<std::unique_ptr<Communicator>> group = make_local_group(n);
  std::vector<std::string> errors(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      try {
        body(*group[size_t(r)]);
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
        leave_local_group(*group[size_t(r)]);  // the others may be waiting for this rank
      }
    });
  for (std::thread& t : threads) t.join();
  return errors;
}

// How far apart two model directories' f32 parameters are: the largest |a - b| over every element, and
// the L2 norm of a - b over the L2 norm of what training moved (b - the run's initial model, `init`).
struct ParamDiff {
  double max_abs = 0, rel_to_update = 0;
};
inline ParamDiff param_diff(const std::string& a, const std::string& b, const std::string& init) {
  SafetensorsFile fa(a + "/model.safetensors"), fb(b + "/model.safetensors"), fi(init + "/model.safetensors");
  ParamDiff d;
  double diff2 = 0, moved2 = 0;
  for (const auto& [name, info] : fb.tensors()) {
    const TensorInfo *ta = fa.find(name), *tb = fb.find(name), *ti = fi.find(name);
    EXPECT_TRUE(ta && ti && ta->numel() == tb->numel()) << name;
    if (!ta || !ti || ta->numel() != tb->numel()) continue;
    const auto* x = reinterpret_cast<const float*>(ta->data);
    const auto* y = reinterpret_cast<const float*>(tb->data);
    const auto* z = reinterpret_cast<const float*>(ti->data);
    for (int64_t i = 0; i < tb->numel(); ++i) {
      d.max_abs = std::max(d.max_abs, double(std::fabs(x[i] - y[i])));
      diff2 += double(x[i] - y[i]) * double(x[i] - y[i]);
      moved2 += double(y[i] - z[i]) * double(y[i] - z[i]);
    }
  }
  d.rel_to_update = std::sqrt(diff2 / std::max(moved2, 1e-300));
  return d;
}

}  // namespace seek::test
