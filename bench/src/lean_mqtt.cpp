#include "lean_mqtt.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "common.hpp"

namespace rtm::bench {
namespace codec = gateway::mqtt_codec;

namespace {

// tcp://host:port (or host:port) -> host, port.
std::pair<std::string, std::string> split_uri(const std::string& uri) {
  std::string rest = uri;
  const auto scheme = rest.find("://");
  if (scheme != std::string::npos) {
    if (rest.compare(0, scheme, "tcp") != 0 && rest.compare(0, scheme, "mqtt") != 0) {
      throw std::runtime_error("lean client: only tcp:// brokers, not " + uri);
    }
    rest = rest.substr(scheme + 3);
  }
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, "1883"};
  std::string host = rest.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  return {host, rest.substr(colon + 1)};
}

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

}  // namespace

LeanConnection::LeanConnection(const std::string& uri, const std::string& client_id,
                               std::uint16_t keepalive_s, const LeanLogin& login)
    : in_(new char[kInCapacity]) {
  const auto [host, port] = split_uri(uri);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    throw std::runtime_error("lean client: " + uri + ": " + ::gai_strerror(rc));
  }
  std::string error = "no address";
  for (addrinfo* a = found; a; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
      fd_ = fd;
      break;
    }
    error = std::strerror(errno);
    ::close(fd);
  }
  ::freeaddrinfo(found);
  if (fd_ < 0) throw std::runtime_error("lean client: connect to " + uri + ": " + error);
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);

  codec::ConnectOptions co;
  co.client_id = client_id;
  co.keepalive_s = keepalive_s;
  co.clean_session = true;
  co.username = login.username;
  co.password = login.password;
  codec::append_connect(out_, co);
  const std::int64_t deadline = now_ns() + 10'000'000'000;
  if (!flush_until(deadline)) throw std::runtime_error("lean client: CONNECT to " + uri + " timed out");
  bool acked = false;
  while (!acked) {
    if (now_ns() > deadline) throw std::runtime_error("lean client: no CONNACK from " + uri);
    wait(100, true, false);
    read_some();
    for_each_packet([&](const codec::Packet& p) {
      if (p.type != codec::PacketType::connack) return;
      if (p.return_code != 0) {
        throw std::runtime_error("lean client: " + uri + " refused the connection (" +
                                 std::to_string(p.return_code) + ")");
      }
      acked = true;
    });
  }
}

LeanConnection::~LeanConnection() {
  if (fd_ < 0) return;
  try {
    out_.erase(0, out_pos_);
    out_pos_ = 0;
    codec::append_disconnect(out_);
    flush_until(now_ns() + 1'000'000'000);
  } catch (const std::exception&) {
  }
  ::close(fd_);
}

void LeanConnection::subscribe(const std::vector<std::pair<std::string, int>>& filters) {
  std::vector<std::uint16_t> waiting;
  for (const auto& f : filters) {
    const std::uint16_t id = next_sub_id_++;
    codec::append_subscribe(out_, id, {f});
    waiting.push_back(id);
  }
  const std::int64_t deadline = now_ns() + 10'000'000'000;
  if (!flush_until(deadline)) throw std::runtime_error("lean client: SUBSCRIBE timed out");
  while (!waiting.empty()) {
    if (now_ns() > deadline) throw std::runtime_error("lean client: no SUBACK");
    wait(100, true, false);
    read_some();
    for_each_packet([&](const codec::Packet& p) {
      if (p.type != codec::PacketType::suback) return;
      for (std::size_t i = 0; i < waiting.size(); ++i) {
        if (waiting[i] != p.packet_id) continue;
        if (p.return_code >= 0x80) {
          throw std::runtime_error("lean client: the broker refused " + filters[i].first);
        }
        waiting.erase(waiting.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    });
  }
}

bool LeanConnection::flush() {
  while (out_pos_ < out_.size()) {
    const ssize_t n = ::send(fd_, out_.data() + out_pos_, out_.size() - out_pos_, MSG_NOSIGNAL);
    if (n > 0) {
      out_pos_ += static_cast<std::size_t>(n);
      last_write_ns_ = now_ns();
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    throw std::runtime_error(errno_text("lean client: send"));
  }
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
    return true;
  }
  if (out_pos_ > (1u << 20)) {  // keep the buffer from growing at the front
    out_.erase(0, out_pos_);
    out_pos_ = 0;
  }
  return false;
}

bool LeanConnection::flush_until(std::int64_t deadline_ns) {
  while (!flush()) {
    const std::int64_t left_ms = (deadline_ns - now_ns()) / 1'000'000;
    if (left_ms <= 0) return false;
    pollfd p{fd_, POLLOUT, 0};
    ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left_ms, 100)));
  }
  return true;
}

std::size_t LeanConnection::read_some() {
  if (in_begin_ == in_end_) {
    in_begin_ = in_end_ = 0;
  } else if (kInCapacity - in_end_ < kReadChunk) {
    std::memmove(in_.get(), in_.get() + in_begin_, in_end_ - in_begin_);
    in_end_ -= in_begin_;
    in_begin_ = 0;
  }
  while (true) {
    const ssize_t n = ::recv(fd_, in_.get() + in_end_, kInCapacity - in_end_, 0);
    if (n > 0) {
      in_end_ += static_cast<std::size_t>(n);
      return static_cast<std::size_t>(n);
    }
    if (n == 0) throw std::runtime_error("lean client: the broker closed the connection");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    throw std::runtime_error(errno_text("lean client: recv"));
  }
}

short LeanConnection::wait(int timeout_ms, bool read, bool write) const {
  pollfd p{fd_, static_cast<short>((read ? POLLIN : 0) | (write ? POLLOUT : 0)), 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return 0;
  return p.revents;
}

void LeanConnection::ping_if_idle(double idle_s) {
  if (static_cast<double>(now_ns() - last_write_ns_) / 1e9 < idle_s) return;
  codec::append_pingreq(out_);
  flush();
}

void LeanConnection::malformed(const std::string& why) {
  throw std::runtime_error("lean client: malformed packet from the broker: " + why);
}

}  // namespace rtm::bench
