#pragma once
// The plugin's book of device publishers (mapping.mode broker). A device's first message to
// a channel topic waits until the gateway has registered the device as a publisher (as the
// relay registers it before carrying the message), so the plugin announces the device once
// and holds its messages, in order, until the gateway confirms or refuses. After that the
// device's messages go straight out: the book costs one hash lookup per message.
//
// Pure: no broker, no clock (times come in), single-threaded (the broker's thread).
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rtm/broker_bridge/records.hpp"

namespace rtm::broker_bridge {

struct HeldMessage {
  std::string rule;  // the rule that made it, for its counters
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retain = false;
};

struct BookLimits {
  std::size_t max_devices = 100000;        // entries; the oldest registered one makes room
  std::size_t max_held_per_device = 1000;  // messages waiting for one device's registration
  std::size_t max_held_bytes = 64u << 20;  // payload + topic bytes waiting, all devices
  std::int64_t announce_retry_ms = 2000;   // announce again when the gateway has not answered
  std::int64_t refused_retry_ms = 5000;    // a refused device's messages are dropped this long
};

class DeviceBook {
 public:
  enum class Status {
    registered,  // send now
    pending,     // announced, not answered: hold behind the others
    refused,     // the gateway refused it a moment ago: drop (reason())
    unknown,     // never announced (or its registration ended): hold and announce
  };
  enum class Held { held, held_announce, dropped_full };

  explicit DeviceBook(BookLimits limits = {});

  // What to do with a message for device publisher (uid, channel, topic). Allocation-free
  // for a known device.
  Status status(std::string_view uid, std::string_view channel, std::string_view topic,
                std::int64_t now_ms);
  // Holds a message of a pending or unknown device; held_announce: tell the gateway now.
  Held hold(const DeviceKey& device, HeldMessage message, std::int64_t now_ms);

  // The gateway's answers. confirm returns the held messages, in arrival order, to send now.
  std::vector<HeldMessage> confirm(const DeviceKey& device);
  // The held messages dropped.
  std::size_t refuse(const DeviceKey& device, const std::string& reason, std::int64_t now_ms);
  void remove(const DeviceKey& device);
  // Another gateway process took over (its state may differ): every registration is asked
  // again at the device's next message; pending ones are announced again at once.
  void forget_registrations();

  // Pending devices the gateway has not answered within announce_retry_ms (marked as
  // announced now).
  std::vector<DeviceKey> due(std::int64_t now_ms);

  // Why the device was refused (after status() returned refused).
  const std::string& reason(std::string_view uid, std::string_view channel, std::string_view topic);

  std::size_t devices() const { return entries_.size(); }
  std::size_t held_messages() const { return held_messages_; }
  std::size_t held_bytes() const { return held_bytes_; }

 private:
  struct Entry {
    DeviceKey device;
    Status status = Status::unknown;
    std::int64_t announced_ms = 0;      // pending
    std::int64_t refused_until_ms = 0;  // refused
    std::string reason;
    std::deque<HeldMessage> held;
  };
  const std::string& key_of(std::string_view uid, std::string_view channel, std::string_view topic);
  void drop_held(Entry& e);
  bool make_room();

  BookLimits limits_;
  std::unordered_map<std::string, Entry> entries_;
  std::string key_;  // reused: building a key allocates nothing once warm
  std::size_t held_messages_ = 0;
  std::size_t held_bytes_ = 0;
  std::size_t pending_ = 0;  // entries in state pending: due() is free without any
};

}  // namespace rtm::broker_bridge
