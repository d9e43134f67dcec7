// The gateway's own MQTT 3.1.1 client for its broker link (broker.client: native).
//
// Why not only Paho: a relay through Paho costs each message two thread crossings and a
// syscall per packet each way (FACTS: ~4.5 CPU-s per 100k relayed). Here one thread owns
// the socket: it reads many packets per recv(), hands each to the listener (the bridge's
// fast path publishes from inside that call), and writes everything queued with one
// send(). Other threads append to the same output buffer and wake the thread once.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <regex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "rtm/gateway/broker_link.hpp"
#include "rtm/gateway/mqtt_codec.hpp"

namespace rtm::gateway {
namespace {

namespace codec = mqtt_codec;
using Clock = std::chrono::steady_clock;

// A PUBLISH packet is its payload plus at most this much (topic length, topic, packet id).
constexpr std::size_t kPublishHeaderBytes = 2 + 65535 + 2;
// Output waiting for the socket beyond this is refused (publish() returns false), so a
// broker that stops reading cannot grow the gateway without bound.
constexpr std::size_t kMaxQueuedOutputBytes = 256 * 1024 * 1024;
// QoS 1 messages kept until the broker acknowledges them (to send again after a reconnect)
// beyond this are refused, so that an outage cannot grow the gateway without bound.
constexpr std::size_t kMaxUnackedBytes = 64 * 1024 * 1024;
// MQTT packet ids are 16 bits; some stay free for SUBSCRIBE and UNSUBSCRIBE.
constexpr std::size_t kMaxUnackedPackets = 65000;
// A skipped packet is logged at most this often (with how many more since).
constexpr auto kSkipLogEvery = std::chrono::seconds(10);
constexpr std::size_t kReadChunk = 256 * 1024;
// Inside a publisher's batch, output beyond this wakes the network thread at once.
constexpr std::size_t kBatchWakeBytes = 64 * 1024;
// A read of this many packets means the broker is streaming to us: pause before the next.
constexpr std::size_t kBusyBatch = 4;
constexpr auto kBusyPause = std::chrono::microseconds(100);
// A connection the broker closes within this time after it was established counts as
// taken over (see run()).
constexpr auto kEarlyClose = std::chrono::seconds(10);

class LinkError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class NativeLink final : public BrokerLink {
 public:
  explicit NativeLink(const BrokerConfig& config) : config_(config) {
    static const std::regex pattern(R"(^(?:tcp|mqtt)://(.+):([0-9]{1,5})$)");
    std::smatch m;
    if (!std::regex_match(config.uri, m, pattern)) {
      throw std::invalid_argument("broker.client native takes tcp://host:port, got " + config.uri);
    }
    host_ = m[1];
    if (host_.size() > 2 && host_.front() == '[' && host_.back() == ']') {
      host_ = host_.substr(1, host_.size() - 2);
    }
    port_ = m[2];
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw std::runtime_error("eventfd failed");
  }

  ~NativeLink() override {
    stop();
    ::close(wake_fd_);
  }

  void start(Listener* listener) override {
    listener_ = listener;
    thread_ = std::thread([this] { run(); });
  }

  void stop() override {
    if (stopping_.exchange(true)) return;
    wake();
    if (thread_.joinable()) thread_.join();
  }

  bool connected() const override { return connected_.load(std::memory_order_acquire); }

  void unsubscribe(const std::vector<std::string>& filters) override {
    std::lock_guard<std::mutex> lock(out_mutex_);
    std::vector<std::string> removed;
    for (const auto& f : filters) {
      auto it = std::find_if(subscriptions_.begin(), subscriptions_.end(),
                             [&f](const auto& s) { return s.first == f; });
      if (it == subscriptions_.end()) continue;
      subscriptions_.erase(it);
      removed.push_back(f);
    }
    if (!removed.empty() && connected_.load(std::memory_order_acquire)) {
      codec::append_unsubscribe(out_, next_packet_id_locked(), removed);
      wake_locked();
    }
  }

  void set_will(Will will) override {
    std::lock_guard<std::mutex> lock(out_mutex_);
    will_ = std::move(will);
  }

  LinkStats stats() const override {
    return {connects_.load(std::memory_order_relaxed), lost_.load(std::memory_order_relaxed),
            early_closes_.load(std::memory_order_relaxed),
            skipped_.load(std::memory_order_relaxed)};
  }

  void subscribe(const std::vector<std::string>& filters, int qos) override {
    std::lock_guard<std::mutex> lock(out_mutex_);
    for (const auto& f : filters) subscriptions_.emplace_back(f, qos);
    if (connected_.load(std::memory_order_acquire)) {
      std::vector<std::pair<std::string, int>> now;
      for (const auto& f : filters) now.emplace_back(f, qos);
      codec::append_subscribe(out_, next_packet_id_locked(), now);
      wake_locked();
    }
  }

  bool publish(const std::string& topic, std::string_view payload, int qos, bool retain) override {
    std::lock_guard<std::mutex> lock(out_mutex_);
    if (qos > 0) {
      // Kept until the broker's PUBACK: sent again (DUP) after a reconnect, and taken while
      // the link is down too, so that an answer is not lost to an outage.
      if (unacked_.size() >= kMaxUnackedPackets) return false;
      std::string packet;
      const std::uint16_t id = next_packet_id_locked();
      if (!codec::append_publish(packet, topic, payload, 1, retain, id)) return false;
      if (unacked_bytes_ + packet.size() > kMaxUnackedBytes) return false;
      if (accepting_) {
        if (out_.size() > kMaxQueuedOutputBytes) return false;
        out_ += packet;
      }
      unacked_bytes_ += packet.size();
      unacked_.emplace(id, Unacked{next_unacked_seq_++, std::move(packet)});
      in_flight_.fetch_add(1, std::memory_order_relaxed);
      if (accepting_) wake_locked();
      return true;
    }
    if (!accepting_) return false;
    if (out_.size() > kMaxQueuedOutputBytes) return false;
    {
      if (!codec::append_publish(out_, topic, payload, 0, retain, 0)) return false;
      qos0_ends_.push_back(appended_ + out_.size());
    }
    in_flight_.fetch_add(1, std::memory_order_relaxed);
    wake_locked();
    return true;
  }

  void begin_batch() override {
    std::lock_guard<std::mutex> lock(out_mutex_);
    batching_thread_ = std::this_thread::get_id();
  }

  void end_batch() override {
    std::lock_guard<std::mutex> lock(out_mutex_);
    batching_thread_ = std::thread::id();
    if (wake_held_) {
      wake_held_ = false;
      wake_locked();
    }
  }

  std::size_t in_flight() const override {
    const auto n = in_flight_.load(std::memory_order_relaxed);
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  void set_drain_mark(std::size_t mark) override { drain_mark_ = static_cast<long long>(mark); }

 private:
  // ------------------------------------------------------------ any thread, out_mutex_ held

  // QoS 1 messages the broker has not acknowledged, in the order they were published, with
  // DUP set (MQTT 3.1.1, 4.4: a client resends them when it reconnects).
  void resend_unacked_locked(std::string& out) {
    if (unacked_.empty()) return;
    std::vector<const Unacked*> order;
    order.reserve(unacked_.size());
    for (const auto& [id, u] : unacked_) order.push_back(&u);
    std::sort(order.begin(), order.end(),
              [](const Unacked* a, const Unacked* b) { return a->seq < b->seq; });
    for (const Unacked* u : order) {
      const std::size_t at = out.size();
      out += u->packet;
      out[at] = static_cast<char>(out[at] | kDupFlag);
    }
    resent_.fetch_add(order.size(), std::memory_order_relaxed);
    spdlog::info("broker: sending {} unacknowledged QoS 1 messages again", order.size());
  }

  std::uint16_t next_packet_id_locked() {
    do {
      next_id_ = static_cast<std::uint16_t>(next_id_ == 65535 ? 1 : next_id_ + 1);
    } while (unacked_.count(next_id_));
    return next_id_;
  }

  // Wakes the network thread unless it is the caller (it flushes after every batch) or a
  // wake is already pending. Inside the caller's batch (begin_batch), the wake waits for
  // end_batch, unless the output has grown big enough to be worth sending now.
  void wake_locked() {
    const auto self = std::this_thread::get_id();
    if (self == thread_id_ || wake_pending_) return;
    if (self == batching_thread_ && out_.size() < kBatchWakeBytes) {
      wake_held_ = true;
      return;
    }
    wake_pending_ = true;
    wake();
  }

  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }

  // ------------------------------------------------------------ network thread

  void completed(long long n) {
    if (n <= 0) return;
    const auto before = in_flight_.fetch_sub(n, std::memory_order_relaxed);
    const auto after = before - n;
    if (before > drain_mark_ && after <= drain_mark_ && listener_) listener_->on_drained();
  }

  void run() {
    thread_id_ = std::this_thread::get_id();
    auto backoff = std::chrono::milliseconds(config_.reconnect_min_ms);
    bool quiet = false;
    while (!stopping_.load()) {
      std::string why;
      try {
        session();  // returns when stopping
        break;
      } catch (const std::exception& e) {
        why = e.what();
      }
      const bool was_connected = connected_.exchange(false);
      reset_connection();
      if (was_connected) {
        lost_.fetch_add(1, std::memory_order_relaxed);
        // The broker closing a fresh connection again and again is what an MQTT take-over
        // looks like: another client connects with our client id, we connect back, and so
        // on. Keep backing off then, instead of joining the fight at full speed.
        const bool early = closed_by_broker_ && Clock::now() - connected_at_ < kEarlyClose;
        if (early) {
          early_closes_.fetch_add(1, std::memory_order_relaxed);
          ++early_in_a_row_;
        } else {
          early_in_a_row_ = 0;
          backoff = std::chrono::milliseconds(config_.reconnect_min_ms);
        }
        if (early_in_a_row_ >= 2) {
          spdlog::error(
              "broker: the broker closed the connection {} times in a row within {} s of "
              "connecting. Another client probably uses this gateway's broker.client_id \"{}\" "
              "(the broker hands an id to whoever connects last): give every gateway its own "
              "client id. Reconnecting in {} ms",
              early_in_a_row_, std::chrono::duration_cast<std::chrono::seconds>(kEarlyClose).count(),
              config_.client_id, backoff.count());
        }
        listener_->on_connection_lost(why);
        quiet = false;
      } else if (!quiet) {
        spdlog::warn("broker: connect to {} failed: {}; retrying", config_.uri, why);
        quiet = true;
      } else {
        spdlog::debug("broker: connect to {} failed: {}", config_.uri, why);
      }
      sleep_interruptibly(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(config_.reconnect_max_ms));
    }
    if (fd_ >= 0) {
      std::string bye;
      codec::append_disconnect(bye);
      [[maybe_unused]] auto n = ::send(fd_, bye.data(), bye.size(), MSG_NOSIGNAL);
    }
    connected_.store(false);
    reset_connection();
  }

  void sleep_interruptibly(std::chrono::milliseconds d) {
    pollfd p{wake_fd_, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(d.count()));
    drain_wake_fd();
  }

  // One read takes the whole counter of an eventfd (not in semaphore mode) and resets it.
  void drain_wake_fd() {
    std::uint64_t v;
    [[maybe_unused]] auto n = ::read(wake_fd_, &v, sizeof v);
  }

  void reset_connection() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    in_start_ = in_len_ = 0;
    skip_remaining_ = 0;
    sending_.clear();
    sent_ = 0;
    long long lost = 0;
    {
      std::lock_guard<std::mutex> lock(out_mutex_);
      accepting_ = false;
      // QoS 0 messages not written are lost, counted out so that callers waiting for room
      // are not stuck; QoS 1 ones stay in unacked_ and go again after the reconnect.
      lost = static_cast<long long>(qos0_ends_.size());
      out_.clear();
      qos0_ends_.clear();
      appended_ = 0;
      written_ = 0;
      wake_pending_ = false;
    }
    completed(lost);
    in_flight_.store(0, std::memory_order_relaxed);
  }

  void open_socket() {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (int rc = ::getaddrinfo(host_.c_str(), port_.c_str(), &hints, &found); rc != 0) {
      throw LinkError(std::string("cannot resolve ") + host_ + ": " + ::gai_strerror(rc));
    }
    std::string last_error = "no address";
    for (auto* a = found; a; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
        last_error = std::strerror(errno);
        ::close(fd);
        continue;
      }
      pollfd p{fd, POLLOUT, 0};
      const int ready = ::poll(&p, 1, config_.connect_timeout_s * 1000);
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (ready <= 0 || err != 0) {
        last_error = ready <= 0 ? "timed out" : std::strerror(err);
        ::close(fd);
        continue;
      }
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // 60 Hz frames, not Nagle
      fd_ = fd;
      break;
    }
    ::freeaddrinfo(found);
    if (fd_ < 0) throw LinkError("TCP connect failed: " + last_error);
  }

  // Connects, subscribes, then serves until stopping (returns) or an error (throws).
  void session() {
    closed_by_broker_ = false;
    open_socket();
    codec::ConnectOptions options;
    options.client_id = config_.client_id;
    options.username = config_.username;
    options.password = config_.password;
    options.keepalive_s = static_cast<std::uint16_t>(config_.keepalive_s);
    options.clean_session = !config_.persistent_session;
    std::string hello;
    codec::append_connect(hello, options);
    std::uint16_t subscribe_id = 0;
    {
      std::lock_guard<std::mutex> lock(out_mutex_);
      if (!will_.topic.empty()) {
        // The CONNECT is rebuilt with the Will of the moment.
        hello.clear();
        options.will_topic = will_.topic;
        options.will_payload = will_.payload;
        options.will_qos = will_.qos;
        options.will_retain = will_.retain;
        codec::append_connect(hello, options);
      }
      if (!subscriptions_.empty()) {
        subscribe_id = next_packet_id_locked();
        codec::append_subscribe(hello, subscribe_id, subscriptions_);
      }
      resend_unacked_locked(hello);
    }
    sending_ = std::move(hello);
    sent_ = 0;

    bool acknowledged = false;
    bool subscribed = subscribe_id == 0;
    const auto deadline = Clock::now() + std::chrono::seconds(config_.connect_timeout_s);
    last_received_ = last_sent_ = Clock::now();
    while (!stopping_.load()) {
      const bool ready = acknowledged && subscribed;
      if (!ready && Clock::now() > deadline) throw LinkError("no CONNACK/SUBACK in time");
      if (ready && !connected_.load()) {
        connected_.store(true, std::memory_order_release);
        connected_at_ = Clock::now();
        connects_.fetch_add(1, std::memory_order_relaxed);
        spdlog::info("broker: connected to {} as {}", config_.uri, config_.client_id);
        listener_->on_connected(session_present_);
      }
      take_output();
      pollfd fds[2] = {{fd_, static_cast<short>(POLLIN | (pending_output() ? POLLOUT : 0)), 0},
                       {wake_fd_, POLLIN, 0}};
      const int rc = ::poll(fds, 2, poll_timeout_ms());
      if (rc < 0 && errno != EINTR) throw LinkError(std::string("poll: ") + std::strerror(errno));
      if (fds[1].revents & POLLIN) {
        drain_wake_fd();
        std::lock_guard<std::mutex> lock(out_mutex_);
        wake_pending_ = false;
      }
      if (fds[0].revents & (POLLERR | POLLHUP)) {
        if (!(fds[0].revents & POLLIN)) {
          closed_by_broker_ = true;
          throw LinkError("connection closed by the broker");
        }
      }
      std::size_t packets = 0;
      if (fds[0].revents & POLLIN) packets = read_packets(acknowledged, subscribed, subscribe_id);
      take_output();
      flush();
      // Under load, wait a moment before the next read so that it takes a bigger batch: every
      // wake-up of ours also costs the broker (its send wakes us). At low rates, never.
      if (packets >= kBusyBatch) std::this_thread::sleep_for(kBusyPause);
      keep_alive();
    }
  }

  int poll_timeout_ms() const {
    return std::max(10, config_.keepalive_s * 1000 / 4);
  }

  void keep_alive() {
    const auto now = Clock::now();
    const auto keepalive = std::chrono::seconds(config_.keepalive_s);
    if (now - last_received_ > keepalive * 3 / 2) throw LinkError("keep-alive timeout");
    if (now - last_sent_ >= keepalive / 2 && !pending_output()) {
      std::string ping;
      codec::append_pingreq(ping);
      sending_ += ping;
      flush();
    }
  }

  bool pending_output() const { return sent_ < sending_.size(); }

  // Moves what other threads queued into the network thread's own send buffer.
  void take_output() {
    if (pending_output()) return;
    std::lock_guard<std::mutex> lock(out_mutex_);
    if (out_.empty()) return;
    sending_.clear();
    sent_ = 0;
    std::swap(sending_, out_);
    batch_start_ = appended_;
    appended_ += sending_.size();
    out_.reserve(64 * 1024);
  }

  void flush() {
    while (pending_output()) {
      const ssize_t n = ::send(fd_, sending_.data() + sent_, sending_.size() - sent_,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == EINTR) continue;
        throw LinkError(std::string("send: ") + std::strerror(errno));
      }
      sent_ += static_cast<std::size_t>(n);
      last_sent_ = Clock::now();
      // QoS 0 messages are done once written.
      long long done = 0;
      {
        std::lock_guard<std::mutex> lock(out_mutex_);
        written_ = batch_start_ + sent_;
        while (!qos0_ends_.empty() && qos0_ends_.front() <= written_) {
          qos0_ends_.pop_front();
          ++done;
        }
      }
      completed(done);
      if (!pending_output()) {
        take_output();
        if (!pending_output()) break;
      }
    }
  }

  // A packet the gateway will not take: read past it (now or as it arrives), acknowledge a
  // QoS 1 PUBLISH so the broker does not send it again, count it, and say so.
  void skipped(const codec::DecodeResult& r, std::string& acks) {
    const auto& p = r.packet;
    skipped_.fetch_add(1, std::memory_order_relaxed);
    const auto now = Clock::now();
    if (now >= next_skip_log_) {
      spdlog::warn("broker: skipped a {} on {}: {}{}",
                   p.type == codec::PacketType::publish ? "message" : "packet",
                   p.topic.empty() ? std::string("(topic unknown)") : std::string(p.topic), r.error,
                   skips_unlogged_ > 0 ? " (" + std::to_string(skips_unlogged_) + " more since the last line)"
                                       : std::string());
      skips_unlogged_ = 0;
      next_skip_log_ = now + kSkipLogEvery;
    } else {
      ++skips_unlogged_;
    }
    if (p.type == codec::PacketType::publish && p.qos == 1 && p.packet_id != 0) {
      codec::append_puback(acks, p.packet_id);
    }
    const std::size_t available = in_len_ - in_start_;
    if (p.size <= available) {
      in_start_ += p.size;
    } else {
      skip_remaining_ = p.size - available;
      in_start_ = in_len_;
    }
  }

  // Returns how many packets the read took.
  std::size_t read_packets(bool& acknowledged, bool& subscribed, std::uint16_t subscribe_id) {
    // One recv() takes as many packets as the kernel holds. The buffer keeps its size
    // between reads (no zero-filling per read); consumed bytes are dropped by moving the
    // unread tail to the front only when room runs short.
    if (in_start_ == in_len_) {
      in_start_ = in_len_ = 0;
    } else if (in_.size() - in_len_ < kReadChunk / 4) {
      std::memmove(in_.data(), in_.data() + in_start_, in_len_ - in_start_);
      in_len_ -= in_start_;
      in_start_ = 0;
      if (in_.size() - in_len_ < kReadChunk / 4) in_.resize(in_.size() * 2);  // a big packet
    }
    const ssize_t n = ::recv(fd_, in_.data() + in_len_, in_.size() - in_len_, MSG_DONTWAIT);
    if (n <= 0) {
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
      closed_by_broker_ = n == 0 || errno == ECONNRESET;
      throw LinkError(n == 0 ? "connection closed by the broker"
                             : std::string("recv: ") + std::strerror(errno));
    }
    in_len_ += static_cast<std::size_t>(n);
    last_received_ = Clock::now();

    std::string acks;
    std::size_t packets = 0;
    // The listener is told where the read's messages end (it wakes its loop once for all).
    struct BatchScope {
      Listener* l;
      explicit BatchScope(Listener* listener) : l(listener) { l->on_batch_begin(); }
      ~BatchScope() { l->on_batch_end(); }
    } batch_scope(listener_);
    if (skip_remaining_ > 0) {  // the rest of a packet we read past
      const std::size_t n = std::min(skip_remaining_, in_len_ - in_start_);
      in_start_ += n;
      skip_remaining_ -= n;
    }
    while (in_start_ < in_len_) {
      auto r = codec::decode(std::string_view(in_.data() + in_start_, in_len_ - in_start_),
                             config_.max_message_bytes + kPublishHeaderBytes);
      if (r.status == codec::DecodeStatus::need_more) break;
      if (r.status == codec::DecodeStatus::malformed) throw LinkError("from the broker: " + r.error);
      if (r.status == codec::DecodeStatus::skip) {
        skipped(r, acks);
        continue;
      }
      const auto& p = r.packet;
      ++packets;
      switch (p.type) {
        case codec::PacketType::connack:
          if (p.return_code != 0) {
            throw LinkError("broker refused the connection (CONNACK code " +
                            std::to_string(p.return_code) + ")");
          }
          acknowledged = true;
          session_present_ = p.session_present;
          {
            // A resumed session delivers its queued messages right after the CONNACK,
            // before our SUBACK: their answers must be taken from then on.
            std::lock_guard<std::mutex> lock(out_mutex_);
            accepting_ = true;
          }
          break;
        case codec::PacketType::suback:
          if (p.packet_id == subscribe_id) subscribed = true;
          if (p.return_code == 0x80) {
            spdlog::warn("broker: a subscription was refused (SUBACK 0x80): check the ACL");
          }
          break;
        case codec::PacketType::publish: {
          Message m;
          m.topic.assign(p.topic.data(), p.topic.size());
          m.payload.assign(p.payload.data(), p.payload.size());
          m.qos = p.qos;
          m.retained = p.retain;
          const auto id = p.packet_id;
          const int qos = p.qos;
          in_start_ += p.size;  // before the call: the listener may take long
          listener_->on_message(std::move(m));
          // Acknowledged only once the gateway holds it (the listener may block when full).
          if (qos == 1) codec::append_puback(acks, id);
          continue;
        }
        case codec::PacketType::puback: {
          bool known;
          {
            std::lock_guard<std::mutex> lock(out_mutex_);
            auto it = unacked_.find(p.packet_id);
            known = it != unacked_.end();
            if (known) {
              unacked_bytes_ -= it->second.packet.size();
              unacked_.erase(it);
            }
          }
          if (known) completed(1);
          break;
        }
        case codec::PacketType::pingresp:
        case codec::PacketType::unsuback:
          break;
        default:
          break;  // QoS 2 is never subscribed to
      }
      in_start_ += p.size;
    }
    if (!acks.empty()) {
      std::lock_guard<std::mutex> lock(out_mutex_);
      out_ += acks;
    }
    return packets;
  }

  BrokerConfig config_;
  std::string host_;
  std::string port_;
  Listener* listener_ = nullptr;
  std::thread thread_;
  std::thread::id thread_id_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> connected_{false};
  int wake_fd_ = -1;

  // Network thread only.
  int fd_ = -1;
  std::vector<char> in_ = std::vector<char>(kReadChunk);
  std::size_t in_start_ = 0;  // first unread byte
  std::size_t in_len_ = 0;    // bytes held
  std::string sending_;
  std::size_t sent_ = 0;
  std::uint64_t batch_start_ = 0;  // stream offset of sending_[0]
  Clock::time_point last_received_;
  Clock::time_point last_sent_;

  // Shared, under out_mutex_.
  std::mutex out_mutex_;
  std::string out_;
  bool wake_pending_ = false;
  std::thread::id batching_thread_;  // between its begin_batch() and end_batch()
  bool wake_held_ = false;           // a wake put off until end_batch()
  std::uint64_t appended_ = 0;  // stream bytes moved to sending_ so far
  std::uint64_t written_ = 0;
  std::deque<std::uint64_t> qos0_ends_;  // stream offset where each queued QoS 0 message ends
  struct Unacked {
    std::uint64_t seq;   // publish order
    std::string packet;  // the PUBLISH as first sent
  };
  static constexpr char kDupFlag = 0x08;  // in a PUBLISH's fixed header
  std::unordered_map<std::uint16_t, Unacked> unacked_;
  std::size_t unacked_bytes_ = 0;
  std::uint64_t next_unacked_seq_ = 0;
  std::atomic<std::uint64_t> resent_{0};
  std::uint16_t next_id_ = 0;
  std::vector<std::pair<std::string, int>> subscriptions_;

  Will will_;  // under out_mutex_

  std::atomic<long long> in_flight_{0};
  long long drain_mark_ = 0;

  // Network thread only: bytes of a skipped packet still to read past, and its log.
  std::size_t skip_remaining_ = 0;
  Clock::time_point next_skip_log_{};
  std::uint64_t skips_unlogged_ = 0;
  std::atomic<std::uint64_t> skipped_{0};

  // Network thread only: how the last connection ended, for take-over detection.
  bool closed_by_broker_ = false;
  bool session_present_ = false;
  bool accepting_ = false;  // publish() takes messages (CONNACK seen); out_mutex_
  Clock::time_point connected_at_;
  int early_in_a_row_ = 0;
  std::atomic<std::uint64_t> connects_{0}, lost_{0}, early_closes_{0};
};

}  // namespace

std::unique_ptr<BrokerLink> make_native_link(const BrokerConfig& config) {
  return std::make_unique<NativeLink>(config);
}

}  // namespace rtm::gateway
