#include "rtm/gateway/metrics.hpp"

#include <cmath>
#include <cstdio>

namespace rtm::gateway {
namespace {

void append_number(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else if (value == std::floor(value) && std::fabs(value) < 1e15) {
    out += std::to_string(static_cast<long long>(value));
  } else {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", value);
    out += buf;
  }
}

// Label values: backslash, double quote and line feed escaped, as the format requires.
void append_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// HELP text: backslash and line feed escaped.
void append_help(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

}  // namespace

void LatencyHistogram::observe(double seconds) {
  ++count_;
  sum_ += seconds;
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    if (seconds <= kBounds[i]) {
      ++buckets_[i];
      return;
    }
  }
}

std::uint64_t LatencyHistogram::at_or_below(std::size_t i) const {
  std::uint64_t total = 0;
  for (std::size_t k = 0; k <= i && k < buckets_.size(); ++k) total += buckets_[k];
  return total;
}

void MetricsWriter::family(std::string_view name, Type type, std::string_view help) {
  name_.assign(name.data(), name.size());
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  append_help(out_, help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += type == Type::counter ? " counter\n" : type == Type::gauge ? " gauge\n" : " histogram\n";
}

void MetricsWriter::write_sample(std::string_view suffix, double value, const Labels& labels,
                                 std::string_view extra_name, std::string_view extra_value) {
  out_ += name_;
  out_ += suffix;
  if (!labels.empty() || !extra_name.empty()) {
    out_ += '{';
    bool first = true;
    auto label = [&](std::string_view k, std::string_view v) {
      if (!first) out_ += ',';
      first = false;
      out_ += k;
      out_ += "=\"";
      append_label_value(out_, v);
      out_ += '"';
    };
    for (const auto& [k, v] : labels) label(k, v);
    if (!extra_name.empty()) label(extra_name, extra_value);
    out_ += '}';
  }
  out_ += ' ';
  append_number(out_, value);
  out_ += '\n';
}

void MetricsWriter::sample(double value, const Labels& labels) {
  write_sample("", value, labels);
}

void MetricsWriter::counter(std::string_view name, std::string_view help, double value,
                            const Labels& labels) {
  family(name, Type::counter, help);
  sample(value, labels);
}

void MetricsWriter::gauge(std::string_view name, std::string_view help, double value,
                          const Labels& labels) {
  family(name, Type::gauge, help);
  sample(value, labels);
}

void MetricsWriter::histogram(std::string_view name, std::string_view help,
                              const LatencyHistogram& h) {
  family(name, Type::histogram, help);
  for (std::size_t i = 0; i < LatencyHistogram::kBounds.size(); ++i) {
    std::string bound;
    append_number(bound, LatencyHistogram::kBounds[i]);
    write_sample("_bucket", static_cast<double>(h.at_or_below(i)), {}, "le", bound);
  }
  write_sample("_bucket", static_cast<double>(h.count()), {}, "le", "+Inf");
  write_sample("_sum", h.sum(), {});
  write_sample("_count", static_cast<double>(h.count()), {});
}

}  // namespace rtm::gateway
