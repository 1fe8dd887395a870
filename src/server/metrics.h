// metrics.h — what GET /metrics reports, in Prometheus' text format: counters and gauges passed in by
// the server, and latency histograms (cumulative buckets, _sum and _count) that any thread may update.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace seek {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);  // seconds, increasing; +Inf is added
  void observe(double v);
  // Appends "# HELP", "# TYPE" and the bucket lines of `name` to out.
  void render(std::string& out, const std::string& name, const std::string& help) const;
  int64_t count() const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bucket (not cumulative); last is +Inf
  double sum_ = 0;
  int64_t n_ = 0;
};

// Default latency buckets: 1 ms to 120 s.
std::vector<double> latency_buckets();

// One sample line with its HELP and TYPE ("counter" or "gauge").
void render_metric(std::string& out, const std::string& name, const std::string& type, const std::string& help,
                   double value);

}  // namespace seek
