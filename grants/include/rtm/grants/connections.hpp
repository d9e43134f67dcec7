#pragma once
// The broker side of "connections follow the session" (docs/security.md, "Broker-enforced
// channels"): which MQTT connection logged in as which uid with a token valid until when,
// and which of a uid's connections sent its latest login request. Pure (no clock, no
// broker): the Mosquitto plugin feeds it events and carries out what it answers.
//
// Expiries sit in a min-heap with lazy deletion, so that finding the connections to close
// costs nothing while none is due: a tick looks at the top of the heap only. Entries made
// stale by a raised expiry or a gone connection are dropped when they come to the top, and
// the heap is rebuilt when stale entries outnumber live ones.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rtm::grants {

// At most this many token connections are tracked; a login beyond it is refused (the
// broker's own max_connections should stop far below).
inline constexpr std::size_t kMaxTrackedConnections = 1u << 20;

class ConnectionBook {
 public:
  explicit ConnectionBook(std::size_t max_connections = kMaxTrackedConnections)
      : max_connections_(max_connections) {}

  enum class Added { added, replaced, full };
  // A token login of `client_id` as `uid`, valid until `expires_at_s`. `handle` tells this
  // connection from a later one with the same client id (a take-over). A client id already
  // known is replaced; a new one beyond the bound is refused (full).
  Added add(std::string_view client_id, std::string_view uid, std::int64_t expires_at_s,
            const void* handle);
  // The connection closed; only the entry of that same connection (handle) is removed.
  bool remove(std::string_view client_id, const void* handle);
  // `T uid exp`: every connection of uid may stay at least until expires_at_s. Returns how
  // many connections were raised.
  std::size_t raise_expiry(std::string_view uid, std::int64_t expires_at_s);
  // uid sent a login request from client_id (one of its tracked connections).
  bool note_login(std::string_view uid, std::string_view client_id);
  // `k uid`: uid's connections but the one that sent its latest login (all of them when
  // no login was seen: fail closed).
  std::vector<std::string> all_but_latest_login(std::string_view uid) const;
  std::vector<std::string> connections_of(std::string_view uid) const;
  // Connections whose token expired (expiry <= now_s): removed from the book and appended
  // to `out`.
  void take_expired(std::int64_t now_s, std::vector<std::string>& out);

  std::optional<std::int64_t> expiry_of(std::string_view client_id) const;
  std::size_t size() const { return connections_.size(); }
  std::size_t users() const { return users_.size(); }
  std::size_t heap_size() const { return heap_.size(); }

 private:
  struct Connection {
    std::string uid;
    std::int64_t expires_at_s = 0;
    const void* handle = nullptr;
    std::uint64_t generation = 0;
  };
  struct User {
    std::vector<std::string> clients;
    std::string latest_login;
  };
  struct Due {
    std::int64_t expires_at_s;
    std::uint64_t generation;
    std::string client_id;
  };

  void push(const std::string& client_id, const Connection& c);
  void erase(std::unordered_map<std::string, Connection>::iterator it);
  void compact_if_stale();

  std::size_t max_connections_;
  std::uint64_t next_generation_ = 1;
  std::unordered_map<std::string, Connection> connections_;  // client id ->
  std::unordered_map<std::string, User> users_;              // uid ->
  std::vector<Due> heap_;                                    // min-heap on expires_at_s
};

// The uid of a login request `{prefix}/req/{uid}/login[?query]`, or nullopt. `req_head`
// is "{prefix}/req/". The uid is not checked here (the broker's ACL lets only uid write
// its own request level).
std::optional<std::string_view> login_request_uid(std::string_view req_head,
                                                  std::string_view topic);

// At most `lines` log lines per `window_s` seconds for one kind of event; the ones left
// out are counted and reported with the next line that is let through.
class LogBudget {
 public:
  LogBudget(std::uint32_t lines, std::int64_t window_s) : lines_(lines), window_s_(window_s) {}
  // True when a line may be logged now; `suppressed` is then the number left out since
  // the previous line that was let through.
  bool allow(std::int64_t now_s, std::uint64_t& suppressed);

 private:
  std::uint32_t lines_;
  std::int64_t window_s_;
  std::int64_t window_start_ = 0;
  std::uint32_t used_ = 0;
  std::uint64_t suppressed_ = 0;
};

}  // namespace rtm::grants
