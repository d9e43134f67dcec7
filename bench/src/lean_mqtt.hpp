#pragma once
// A lean MQTT 3.1.1 client connection for the throughput benchmark: one non-blocking TCP
// socket with TCP_NODELAY and the gateway's own codec (rtm/gateway/mqtt_codec.hpp). No
// threads and no queues of its own: the caller appends many packets to out() and writes
// them with one flush(), and decodes many packets per read_some(). That keeps the clients
// from being the bottleneck of a benchmark whose subject is the broker (and the gateway).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "rtm/gateway/mqtt_codec.hpp"

namespace rtm::bench {

// A username and password for CONNECT: a token login (username = uid, password = a token
// signed with the gateway's secret, client id the uid or "uid/...") or a service user of the
// broker's password_file. Empty username: none sent.
struct LeanLogin {
  std::string username;
  std::string password;
};

class LeanConnection {
 public:
  // Connects to tcp://host:port, sends CONNECT (clean session) and waits for the CONNACK.
  // Throws on failure (a refused login too, with the CONNACK's return code).
  LeanConnection(const std::string& uri, const std::string& client_id, std::uint16_t keepalive_s = 60,
                 const LeanLogin& login = {});
  LeanConnection(const std::string& uri, const std::string& client_id, const LeanLogin& login)
      : LeanConnection(uri, client_id, 60, login) {}
  ~LeanConnection();  // sends DISCONNECT (best effort) and closes
  LeanConnection(const LeanConnection&) = delete;
  LeanConnection& operator=(const LeanConnection&) = delete;

  int fd() const { return fd_; }

  // SUBSCRIBE to each filter and wait for its SUBACK; throws if the broker refuses one.
  void subscribe(const std::vector<std::pair<std::string, int>>& filters);

  // Output: append packets to out(), then flush() writes what the socket takes now
  // (non-blocking). flush() returns true when nothing is left; throws on a socket error.
  std::string& out() { return out_; }
  bool flush();
  std::size_t pending() const { return out_.size() - out_pos_; }
  // Writes everything in out(), waiting for the socket as needed, until the deadline
  // (steady clock ns). True when all was written.
  bool flush_until(std::int64_t deadline_ns);

  // Input: reads what the socket has now (non-blocking) into the input buffer; returns the
  // bytes read (0 when none). Throws when the broker closed the connection.
  std::size_t read_some();
  // Decodes every complete packet in the input buffer, calls f(const Packet&) for each and
  // drops them. The packet's views are valid only during the call. Throws on a malformed one.
  template <class F>
  std::size_t for_each_packet(F&& f) {
    std::size_t n = 0;
    while (in_begin_ < in_end_) {
      auto r = gateway::mqtt_codec::decode(std::string_view(in_.get() + in_begin_, in_end_ - in_begin_),
                                           kMaxPacket);
      if (r.status == gateway::mqtt_codec::DecodeStatus::need_more) break;
      if (r.status == gateway::mqtt_codec::DecodeStatus::malformed) malformed(r.error);
      f(r.packet);
      in_begin_ += r.packet.size;
      ++n;
    }
    return n;
  }

  // Waits until the socket is readable (with `read`) or writable (with `write`), or
  // timeout_ms passes. Returns the poll revents (0 on timeout).
  short wait(int timeout_ms, bool read, bool write) const;

  // Appends a PINGREQ when nothing was written for idle_s: the broker drops a connection
  // that sends nothing for 1.5 × keepalive (a QoS 0 subscriber never sends otherwise).
  void ping_if_idle(double idle_s);

 private:
  static constexpr std::size_t kMaxPacket = 1 << 20;
  static constexpr std::size_t kInCapacity = 4 << 20;
  static constexpr std::size_t kReadChunk = 256 << 10;
  [[noreturn]] static void malformed(const std::string& why);

  int fd_ = -1;
  std::string out_;
  std::size_t out_pos_ = 0;
  std::unique_ptr<char[]> in_;
  std::size_t in_begin_ = 0, in_end_ = 0;
  std::int64_t last_write_ns_ = 0;
  std::uint16_t next_sub_id_ = 1;
};

}  // namespace rtm::bench
