#pragma once
// The gateway's only view of the broker. Kept behind an interface of our own so that
// the hot path can change (several connections, another client library) without
// touching the logic, and so that the logic can be unit-tested without a broker.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/gateway/config.hpp"

namespace rtm::gateway {

struct Message {
  std::string topic;
  std::string payload;
  int qos = 0;
  bool retained = false;
  bool deferred = false;  // the bridge's fast path handed it to the loop (see Core::fast_path)
  // When the gateway took it from the link (request latency is measured from here).
  std::chrono::steady_clock::time_point received{};
};

// The last message the broker publishes for the gateway when its connection drops.
struct Will {
  std::string topic;
  std::string payload;
  int qos = 1;
  bool retain = true;
};

// What the link has seen, for metrics (read from any thread).
struct LinkStats {
  std::uint64_t connects = 0;        // successful connections (CONNACK and SUBACK)
  std::uint64_t connection_lost = 0;  // established connections that dropped
  std::uint64_t early_closes = 0;    // of those, closed by the broker soon after connecting
  std::uint64_t skipped = 0;         // messages not taken (over broker.max_message_bytes, bad)
};

class BrokerLink {
 public:
  // Called on the link's own threads: implementations hand work to a queue.
  class Listener {
   public:
    virtual ~Listener() = default;
    // (Re)connected and every subscription is in place again. `session_present`: the
    // broker kept the gateway's MQTT session (and what it queued for it) since before.
    virtual void on_connected(bool session_present) = 0;
    virtual void on_connection_lost(const std::string& why) = 0;
    virtual void on_message(Message&& message) = 0;
    // A link that reads many messages at once may bracket them with these (on the thread
    // that calls on_message), so that the listener wakes its consumer once per read
    // instead of once per message. A link may also never call them.
    virtual void on_batch_begin() {}
    virtual void on_batch_end() {}
    // The number of messages in flight fell to the drain mark (see set_drain_mark).
    virtual void on_drained() {}
  };

  virtual ~BrokerLink() = default;
  // Starts connecting in the background; keeps reconnecting with backoff until stop().
  virtual void start(Listener* listener) = 0;
  // Disconnects cleanly; no callbacks after it returns.
  virtual void stop() = 0;
  virtual bool connected() const = 0;
  // Adds filters to the set the link keeps subscribed across reconnects.
  virtual void subscribe(const std::vector<std::string>& filters, int qos) = 0;
  // Removes filters from that set (and from the broker, when connected).
  virtual void unsubscribe(const std::vector<std::string>& filters) = 0;
  // The Will of every connection made after this call.
  virtual void set_will(Will will) = 0;
  virtual LinkStats stats() const = 0;
  // Queues a message for sending; false when it cannot be queued (link down, buffer
  // full). Never throws.
  virtual bool publish(const std::string& topic, std::string_view payload, int qos,
                       bool retain) = 0;
  // Between these two calls, publish() from the calling thread queues without waking the
  // link's network thread; end_batch() wakes it once for all of them. A thread that
  // publishes many messages in a row (the gateway loop, per turn) saves a wake-up each.
  virtual void begin_batch() {}
  virtual void end_batch() {}
  // Messages queued by publish() and not yet written (QoS 0) or acknowledged (QoS 1).
  virtual std::size_t in_flight() const { return 0; }
  // on_drained() is called each time in_flight() falls to `mark`.
  virtual void set_drain_mark(std::size_t mark) { (void)mark; }
};

}  // namespace rtm::gateway
