#include "rtm/grants/connections.hpp"

#include <algorithm>

namespace rtm::grants {
namespace {

// std::push_heap builds a max-heap: "later expiry is less" puts the earliest on top.
template <typename T>
bool later(const T& a, const T& b) {
  return a.expires_at_s > b.expires_at_s;
}

// Stale heap entries are tolerated up to this many beyond the live ones (times two).
constexpr std::size_t kHeapSlack = 1024;

}  // namespace

void ConnectionBook::push(const std::string& client_id, const Connection& c) {
  heap_.push_back(Due{c.expires_at_s, c.generation, client_id});
  std::push_heap(heap_.begin(), heap_.end(), later<Due>);
  compact_if_stale();
}

void ConnectionBook::compact_if_stale() {
  if (heap_.size() <= 2 * connections_.size() + kHeapSlack) return;
  heap_.clear();
  heap_.reserve(connections_.size());
  for (const auto& [id, c] : connections_) heap_.push_back(Due{c.expires_at_s, c.generation, id});
  std::make_heap(heap_.begin(), heap_.end(), later<Due>);
}

ConnectionBook::Added ConnectionBook::add(std::string_view client_id, std::string_view uid,
                                          std::int64_t expires_at_s, const void* handle) {
  Added result = Added::added;
  if (auto it = connections_.find(std::string(client_id)); it != connections_.end()) {
    erase(it);
    result = Added::replaced;
  } else if (connections_.size() >= max_connections_) {
    return Added::full;
  }
  const std::string id(client_id);
  Connection c{std::string(uid), expires_at_s, handle, next_generation_++};
  users_[c.uid].clients.push_back(id);
  push(id, c);
  connections_.emplace(id, std::move(c));
  return result;
}

void ConnectionBook::erase(std::unordered_map<std::string, Connection>::iterator it) {
  if (auto u = users_.find(it->second.uid); u != users_.end()) {
    auto& clients = u->second.clients;
    clients.erase(std::remove(clients.begin(), clients.end(), it->first), clients.end());
    if (u->second.latest_login == it->first) u->second.latest_login.clear();
    if (clients.empty()) users_.erase(u);
  }
  connections_.erase(it);  // its heap entries go stale
}

bool ConnectionBook::remove(std::string_view client_id, const void* handle) {
  auto it = connections_.find(std::string(client_id));
  if (it == connections_.end() || it->second.handle != handle) return false;
  erase(it);
  compact_if_stale();
  return true;
}

std::size_t ConnectionBook::raise_expiry(std::string_view uid, std::int64_t expires_at_s) {
  auto u = users_.find(std::string(uid));
  if (u == users_.end()) return 0;
  std::size_t raised = 0;
  for (const auto& id : u->second.clients) {
    auto it = connections_.find(id);
    if (it == connections_.end() || it->second.expires_at_s >= expires_at_s) continue;
    it->second.expires_at_s = expires_at_s;  // the older heap entry goes stale
    push(id, it->second);
    ++raised;
  }
  return raised;
}

bool ConnectionBook::note_login(std::string_view uid, std::string_view client_id) {
  auto it = connections_.find(std::string(client_id));
  if (it == connections_.end() || it->second.uid != uid) return false;
  auto u = users_.find(it->second.uid);
  if (u == users_.end()) return false;
  u->second.latest_login.assign(client_id);
  return true;
}

std::vector<std::string> ConnectionBook::all_but_latest_login(std::string_view uid) const {
  std::vector<std::string> out;
  auto u = users_.find(std::string(uid));
  if (u == users_.end()) return out;
  for (const auto& id : u->second.clients) {
    if (id != u->second.latest_login) out.push_back(id);
  }
  return out;
}

std::vector<std::string> ConnectionBook::connections_of(std::string_view uid) const {
  auto u = users_.find(std::string(uid));
  return u == users_.end() ? std::vector<std::string>{} : u->second.clients;
}

void ConnectionBook::take_expired(std::int64_t now_s, std::vector<std::string>& out) {
  while (!heap_.empty() && heap_.front().expires_at_s <= now_s) {
    std::pop_heap(heap_.begin(), heap_.end(), later<Due>);
    Due due = std::move(heap_.back());
    heap_.pop_back();
    auto it = connections_.find(due.client_id);
    if (it == connections_.end() || it->second.generation != due.generation ||
        it->second.expires_at_s != due.expires_at_s) {
      continue;  // stale: gone, replaced or raised
    }
    out.push_back(std::move(due.client_id));
    erase(it);
  }
}

std::optional<std::int64_t> ConnectionBook::expiry_of(std::string_view client_id) const {
  auto it = connections_.find(std::string(client_id));
  if (it == connections_.end()) return std::nullopt;
  return it->second.expires_at_s;
}

std::optional<std::string_view> login_request_uid(std::string_view req_head,
                                                  std::string_view topic) {
  constexpr std::string_view kLogin = "login";
  if (topic.size() <= req_head.size() || topic.compare(0, req_head.size(), req_head) != 0) {
    return std::nullopt;
  }
  const std::string_view rest = topic.substr(req_head.size());
  const auto slash = rest.find('/');
  if (slash == 0 || slash == std::string_view::npos) return std::nullopt;
  const std::string_view uri = rest.substr(slash + 1);
  if (uri.compare(0, kLogin.size(), kLogin) != 0) return std::nullopt;
  if (uri.size() != kLogin.size() && uri[kLogin.size()] != '?') return std::nullopt;
  return rest.substr(0, slash);
}

bool LogBudget::allow(std::int64_t now_s, std::uint64_t& suppressed) {
  if (now_s - window_start_ >= window_s_ || now_s < window_start_) {
    window_start_ = now_s;
    used_ = 0;
  }
  if (used_ >= lines_) {
    ++suppressed_;
    return false;
  }
  ++used_;
  suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace rtm::grants
