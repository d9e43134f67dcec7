#include "rtm/broker_bridge/device_book.hpp"

#include <limits>
#include <utility>

namespace rtm::broker_bridge {
namespace {
std::size_t bytes_of(const HeldMessage& m) {
  return m.topic.size() + m.payload.size();
}
}  // namespace

DeviceBook::DeviceBook(BookLimits limits) : limits_(limits) {}

const std::string& DeviceBook::key_of(std::string_view uid, std::string_view channel,
                                      std::string_view topic) {
  key_.clear();
  key_.append(uid).append(1, '\n').append(channel).append(1, '\n').append(topic);  // not in names
  return key_;
}

DeviceBook::Status DeviceBook::status(std::string_view uid, std::string_view channel,
                                      std::string_view topic, std::int64_t now_ms) {
  auto it = entries_.find(key_of(uid, channel, topic));
  if (it == entries_.end()) return Status::unknown;
  Entry& e = it->second;
  if (e.status == Status::refused && now_ms >= e.refused_until_ms) {
    entries_.erase(it);  // asked again at this message
    return Status::unknown;
  }
  return e.status;
}

const std::string& DeviceBook::reason(std::string_view uid, std::string_view channel,
                                      std::string_view topic) {
  static const std::string kNone;
  auto it = entries_.find(key_of(uid, channel, topic));
  return it == entries_.end() ? kNone : it->second.reason;
}

bool DeviceBook::make_room() {
  if (entries_.size() < limits_.max_devices) return true;
  // A registered device forgotten costs one more announcement when it comes back; a
  // pending one would lose what it holds.
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->second.status == Status::registered || it->second.status == Status::refused) {
      entries_.erase(it);
      return true;
    }
  }
  return false;
}

DeviceBook::Held DeviceBook::hold(const DeviceKey& device, HeldMessage message,
                                  std::int64_t now_ms) {
  const std::size_t size = bytes_of(message);
  if (held_bytes_ + size > limits_.max_held_bytes) return Held::dropped_full;
  auto it = entries_.find(key_of(device.uid, device.channel, device.topic));
  bool announce = false;
  if (it == entries_.end()) {
    if (!make_room()) return Held::dropped_full;
    it = entries_.emplace(key_, Entry{device, Status::pending, now_ms, 0, {}, {}}).first;
    ++pending_;
    announce = true;
  } else if (it->second.status != Status::pending) {
    it->second.status = Status::pending;
    it->second.announced_ms = now_ms;
    ++pending_;
    announce = true;
  }
  Entry& e = it->second;
  if (e.held.size() >= limits_.max_held_per_device) return Held::dropped_full;
  e.held.push_back(std::move(message));
  ++held_messages_;
  held_bytes_ += size;
  return announce ? Held::held_announce : Held::held;
}

void DeviceBook::drop_held(Entry& e) {
  for (const auto& m : e.held) held_bytes_ -= bytes_of(m);
  held_messages_ -= e.held.size();
  e.held.clear();
}

std::vector<HeldMessage> DeviceBook::confirm(const DeviceKey& device) {
  std::vector<HeldMessage> out;
  auto it = entries_.find(key_of(device.uid, device.channel, device.topic));
  if (it == entries_.end()) {
    if (!make_room()) return out;
    it = entries_.emplace(key_, Entry{device, Status::registered, 0, 0, {}, {}}).first;
    return out;
  }
  Entry& e = it->second;
  if (e.status == Status::pending) --pending_;
  e.status = Status::registered;
  e.reason.clear();
  out.reserve(e.held.size());
  for (auto& m : e.held) {
    held_bytes_ -= bytes_of(m);
    out.push_back(std::move(m));
  }
  held_messages_ -= e.held.size();
  e.held.clear();
  return out;
}

std::size_t DeviceBook::refuse(const DeviceKey& device, const std::string& reason,
                               std::int64_t now_ms) {
  auto it = entries_.find(key_of(device.uid, device.channel, device.topic));
  if (it == entries_.end()) return 0;
  Entry& e = it->second;
  const std::size_t dropped = e.held.size();
  drop_held(e);
  if (e.status == Status::pending) --pending_;
  e.status = Status::refused;
  e.refused_until_ms = now_ms + limits_.refused_retry_ms;
  e.reason = reason;
  return dropped;
}

void DeviceBook::remove(const DeviceKey& device) {
  auto it = entries_.find(key_of(device.uid, device.channel, device.topic));
  if (it != entries_.end() && it->second.status == Status::registered) entries_.erase(it);
}

void DeviceBook::forget_registrations() {
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.status == Status::pending) {
      it->second.announced_ms = std::numeric_limits<std::int64_t>::min() / 2;
      ++it;
    } else {
      it = entries_.erase(it);
    }
  }
}

std::vector<DeviceKey> DeviceBook::due(std::int64_t now_ms) {
  std::vector<DeviceKey> out;
  if (pending_ == 0) return out;
  for (auto& [key, e] : entries_) {
    if (e.status == Status::pending && now_ms - e.announced_ms >= limits_.announce_retry_ms) {
      e.announced_ms = now_ms;
      out.push_back(e.device);
      if (out.size() >= kMaxDevicesPerRecord) break;
    }
  }
  return out;
}

}  // namespace rtm::broker_bridge
