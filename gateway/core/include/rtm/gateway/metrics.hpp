#pragma once
// Metrics in the Prometheus text exposition format. The parts of the gateway own their
// numbers and write them on request (MetricsSource), on the loop thread, so nothing here
// needs locks; the ops HTTP listener asks the loop for a rendering.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rtm::gateway {

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

// Latency in seconds, with fixed buckets from 0.1 ms to 10 s.
class LatencyHistogram {
 public:
  static constexpr std::array<double, 15> kBounds{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
  void observe(double seconds);
  std::uint64_t count() const { return count_; }
  double sum() const { return sum_; }
  // Observations at or below kBounds[i] (cumulative, as Prometheus wants them).
  std::uint64_t at_or_below(std::size_t i) const;

 private:
  std::array<std::uint64_t, kBounds.size()> buckets_{};  // per bucket, not cumulative
  std::uint64_t count_ = 0;
  double sum_ = 0;
};

class MetricsWriter {
 public:
  enum class Type { counter, gauge, histogram };

  // Starts a metric family: HELP and TYPE lines. Samples follow with sample().
  void family(std::string_view name, Type type, std::string_view help);
  void sample(double value, const Labels& labels = {});
  // A family with one sample.
  void counter(std::string_view name, std::string_view help, double value,
               const Labels& labels = {});
  void gauge(std::string_view name, std::string_view help, double value, const Labels& labels = {});
  void histogram(std::string_view name, std::string_view help, const LatencyHistogram& h);

  const std::string& text() const { return out_; }

 private:
  void write_sample(std::string_view suffix, double value, const Labels& labels,
                    std::string_view extra_name = {}, std::string_view extra_value = {});

  std::string out_;
  std::string name_;
};

// A part of the gateway with numbers to show (the core, the RTM state, the bridge, ...).
class MetricsSource {
 public:
  virtual ~MetricsSource() = default;
  virtual void write_metrics(MetricsWriter& out) const = 0;
};

}  // namespace rtm::gateway
