#include "rtm/history/streams.hpp"

namespace rtm::history {

Stream* Streams::find(std::string_view channel, std::string_view topic) {
  auto it = streams_.find(Key{std::string(channel), std::string(topic)});
  return it == streams_.end() ? nullptr : &it->second;
}

Stream& Streams::open(std::string_view channel, std::string_view topic, const Limits& limits) {
  Key key{std::string(channel), std::string(topic)};
  auto it = streams_.find(key);
  if (it == streams_.end()) {
    if (streams_.size() >= limits_.max_streams) evict_least_recent();
    it = streams_.emplace(std::move(key), Stream(new_epoch_(), limits)).first;
  } else {
    it->second.set_limits(limits);
  }
  return it->second;
}

const Entry& Streams::append(std::string_view channel, std::string_view topic, const Limits& limits,
                             std::string_view publisher, std::string_view payload,
                             std::int64_t now_ms) {
  Stream& stream = open(channel, topic, limits);
  const auto before = stream.bytes();
  const Entry& entry = stream.append(publisher, payload, now_ms);
  total_bytes_ = total_bytes_ - before + stream.bytes();
  ++counters_.appended;
  if (entry.too_large) ++counters_.too_large;
  if (total_bytes_ > limits_.max_total_bytes) {
    // The writer's own oldest first (the newest entry stays), then everyone else's.
    while (total_bytes_ > limits_.max_total_bytes && stream.size() > 1) {
      const auto b = stream.bytes();
      stream.drop_oldest();
      total_bytes_ -= b - stream.bytes();
      ++counters_.dropped_for_total;
    }
    for (auto& [k, other] : streams_) {
      while (total_bytes_ > limits_.max_total_bytes && &other != &stream && other.size() > 0) {
        const auto b = other.bytes();
        other.drop_oldest();
        total_bytes_ -= b - other.bytes();
        ++counters_.dropped_for_total;
      }
      if (total_bytes_ <= limits_.max_total_bytes) break;
    }
  }
  return entry;
}

void Streams::evict_least_recent() {
  auto victim = streams_.end();
  for (auto it = streams_.begin(); it != streams_.end(); ++it) {
    if (victim == streams_.end() || it->second.last_write_ms() < victim->second.last_write_ms()) {
      victim = it;
    }
  }
  if (victim == streams_.end()) return;
  total_bytes_ -= victim->second.bytes();
  streams_.erase(victim);
  ++counters_.evicted_streams;
}

void Streams::trim(std::int64_t now_ms) {
  for (auto& [k, stream] : streams_) total_bytes_ -= stream.trim(now_ms);
}

void Streams::mark_gap(std::int64_t now_ms) {
  for (auto& [k, stream] : streams_) stream.mark_gap(now_ms);
}

}  // namespace rtm::history
