// EchoGuard: a multiset of (topic, payload) fingerprints with expiry and a size bound.
#include <deque>
#include <functional>
#include <unordered_map>

#include "rtm/mapping/rules.hpp"

namespace rtm::mapping {
namespace {

// One 64-bit fingerprint per (topic, payload): a collision would need two different
// messages with equal 64-bit hashes within one ttl, which we accept.
std::uint64_t fingerprint(std::string_view topic, std::string_view payload) {
  const std::uint64_t topic_hash = std::hash<std::string_view>{}(topic);
  const std::uint64_t payload_hash = std::hash<std::string_view>{}(payload);
  std::uint64_t mixed =
      topic_hash ^ (payload_hash + 0x9E3779B97F4A7C15ULL + (topic_hash << 6) + (topic_hash >> 2));
  // A final avalanche step (splitmix64): std::hash<uint64_t> is the identity.
  mixed ^= mixed >> 30;
  mixed *= 0xBF58476D1CE4E5B9ULL;
  mixed ^= mixed >> 27;
  mixed *= 0x94D049BB133111EBULL;
  mixed ^= mixed >> 31;
  return mixed;
}

}  // namespace

// Entries sit in a FIFO in publication order (so also in expiry order, the ttl being
// fixed). A recognised echo is not searched for in the FIFO: its fingerprint's `live`
// count drops and `forgotten` rises, and the next FIFO entry of that fingerprint to leave
// the front is the forgotten one. Both counts together equal the fingerprint's FIFO
// entries, so every operation is O(1) on average.
struct EchoGuard::Impl {
  struct Counts {
    std::size_t live = 0;
    std::size_t forgotten = 0;
  };
  struct Entry {
    std::uint64_t key;
    std::int64_t expires_ms;
  };

  std::int64_t ttl_ms;
  std::size_t max_entries;
  std::unordered_map<std::uint64_t, Counts> counts;
  std::deque<Entry> fifo;
  std::size_t live = 0;

  void pop_front() {
    const Entry entry = fifo.front();
    fifo.pop_front();
    auto found = counts.find(entry.key);
    Counts& count = found->second;
    if (count.forgotten > 0) {
      --count.forgotten;
    } else {
      --count.live;
      --live;
    }
    if (count.live == 0 && count.forgotten == 0) counts.erase(found);
  }

  void expire(std::int64_t now_ms) {
    while (!fifo.empty() && fifo.front().expires_ms <= now_ms) pop_front();
  }
};

EchoGuard::EchoGuard(std::int64_t ttl_ms, std::size_t max_entries)
    : impl_(std::make_shared<Impl>(Impl{ttl_ms, max_entries, {}, {}, 0})) {}

void EchoGuard::published(std::string_view topic, std::string_view payload, std::int64_t now_ms) {
  Impl& impl = *impl_;
  impl.expire(now_ms);
  if (impl.max_entries == 0 || impl.ttl_ms <= 0) return;
  const std::uint64_t key = fingerprint(topic, payload);
  impl.fifo.push_back(Impl::Entry{key, now_ms + impl.ttl_ms});
  ++impl.counts[key].live;
  ++impl.live;
  while (impl.live > impl.max_entries) impl.pop_front();
  // Forgotten entries wait for the front; bound them too so memory stays O(max_entries)
  // even when echoes are recognised faster than entries expire.
  while (impl.fifo.size() - impl.live > impl.max_entries) impl.pop_front();
}

bool EchoGuard::is_echo(std::string_view topic, std::string_view payload, std::int64_t now_ms) {
  Impl& impl = *impl_;
  impl.expire(now_ms);
  if (impl.live == 0) return false;
  auto found = impl.counts.find(fingerprint(topic, payload));
  if (found == impl.counts.end() || found->second.live == 0) return false;
  --found->second.live;
  ++found->second.forgotten;
  --impl.live;
  return true;
}

std::size_t EchoGuard::size() const {
  return impl_->live;
}

}  // namespace rtm::mapping
