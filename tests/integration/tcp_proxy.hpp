#pragma once
// A TCP forwarder between one client and the broker, so that a test can take that client
// off the network (as a phone losing its signal) while everyone else stays connected:
// cut() closes its connections and refuses new ones until restore().
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

namespace rtm::test {

class TcpProxy {
 public:
  explicit TcpProxy(int target_port) : target_port_(target_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int yes = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 16) != 0) {
      throw std::runtime_error("tcp proxy: cannot listen");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~TcpProxy() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    cut();
    acceptor_.join();
    for (auto& t : pumps_) t.join();
  }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

  // Closes every connection through the proxy and refuses new ones.
  void cut() {
    cut_ = true;
    std::lock_guard<std::mutex> lock(mutex_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }
  void restore() { cut_ = false; }

 private:
  void accept_loop() {
    while (!stopping_) {
      const int client = ::accept(listen_fd_, nullptr, nullptr);
      if (client < 0) {
        if (stopping_) return;
        continue;
      }
      if (cut_) {
        ::close(client);
        continue;
      }
      const int upstream = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<std::uint16_t>(target_port_));
      if (::connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(upstream);
        ::close(client);
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        fds_.insert(client);
        fds_.insert(upstream);
      }
      pumps_.emplace_back([this, client, upstream] { pump(client, upstream); });
    }
  }

  void pump(int a, int b) {
    pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    char buf[65536];
    bool open = true;
    while (open) {
      if (::poll(fds, 2, -1) < 0) break;
      for (int i = 0; i < 2 && open; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          open = false;
          break;
        }
        ssize_t off = 0;
        while (off < n) {
          const ssize_t w = ::write(fds[1 - i].fd, buf + off, static_cast<std::size_t>(n - off));
          if (w <= 0) {
            open = false;
            break;
          }
          off += w;
        }
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    fds_.erase(a);
    fds_.erase(b);
    ::close(a);
    ::close(b);
  }

  int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> cut_{false};
  std::atomic<bool> stopping_{false};
  std::mutex mutex_;
  std::set<int> fds_;
  std::thread acceptor_;
  std::vector<std::thread> pumps_;
};

}  // namespace rtm::test
