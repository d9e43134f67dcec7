#pragma once
// Every stream's history, bounded in all: at most max_streams streams (the least recently
// written goes first, with its epoch) and max_total_bytes of payloads (over it, the stream
// that writes drops its own oldest messages first, then the others' oldest go).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "rtm/history/stream.hpp"

namespace rtm::history {

struct TotalLimits {
  std::size_t max_streams = 10000;
  std::size_t max_total_bytes = 256u << 20;
};

struct StreamsCounters {
  std::uint64_t appended = 0;
  std::uint64_t too_large = 0;          // kept without payload
  std::uint64_t evicted_streams = 0;    // over max_streams
  std::uint64_t dropped_for_total = 0;  // entries dropped over max_total_bytes
};

class Streams {
 public:
  using EpochSource = std::function<std::string()>;
  Streams(TotalLimits limits, EpochSource new_epoch)
      : limits_(limits), new_epoch_(std::move(new_epoch)) {}

  // Appends to the stream (created with `limits` on first use; its limits follow `limits`).
  const Entry& append(std::string_view channel, std::string_view topic, const Limits& limits,
                      std::string_view publisher, std::string_view payload, std::int64_t now_ms);
  // The stream, created with `limits` (a new epoch) when it has no history yet; its limits
  // follow `limits`. A reader opens it too, so that it learns the epoch its positions are in.
  Stream& open(std::string_view channel, std::string_view topic, const Limits& limits);
  // nullptr when the stream has no history (never written, or evicted).
  Stream* find(std::string_view channel, std::string_view topic);
  // Drops what is older than each stream's age limit.
  void trim(std::int64_t now_ms);
  // The gateway may have missed messages on every stream (its broker link dropped).
  void mark_gap(std::int64_t now_ms);
  void set_total_limits(TotalLimits limits) { limits_ = limits; }

  std::size_t size() const { return streams_.size(); }
  std::size_t total_bytes() const { return total_bytes_; }
  const StreamsCounters& counters() const { return counters_; }

 private:
  using Key = std::pair<std::string, std::string>;
  void evict_least_recent();

  TotalLimits limits_;
  EpochSource new_epoch_;
  std::map<Key, Stream, std::less<>> streams_;
  std::size_t total_bytes_ = 0;
  StreamsCounters counters_;
};

}  // namespace rtm::history
