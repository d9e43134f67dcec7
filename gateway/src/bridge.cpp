// The bridge carries out the mapping rules' decisions.
//
// Hot path: a bridge message is routed and published on the broker link's own thread
// (Core::fast_path), with no hop through the gateway loop, as long as that is safe:
// every device publisher it names is already registered, the queues are empty, and the
// link has room. Anything else (a device's first message, presence, a full link) is
// handed to the loop in arrival order, and the fast path stays off until the loop has
// worked through it, so that per-topic order holds across both paths.
#include "rtm/gateway/bridge.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

namespace rtm::gateway {
namespace {

struct Outgoing {
  std::string topic;
  std::string payload;
  int qos;
  bool retain;
};

// Logs at most one line per rule every 10 s, with how many were left out in between.
class RateLimitedLog {
 public:
  void drop(const std::string& rule, const std::string& reason, std::int64_t now_ms) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& s = state_[rule];
    if (now_ms >= s.next_ms) {
      if (s.suppressed > 0) {
        spdlog::warn("bridge: rule {} dropped a message: {} ({} more since the last line)", rule,
                     reason, s.suppressed);
      } else {
        spdlog::warn("bridge: rule {} dropped a message: {}", rule, reason);
      }
      s.suppressed = 0;
      s.next_ms = now_ms + 10000;
    } else {
      ++s.suppressed;
    }
  }

 private:
  struct PerRule {
    std::int64_t next_ms = 0;
    std::uint64_t suppressed = 0;
  };
  std::mutex mutex_;
  std::unordered_map<std::string, PerRule> state_;
};

struct AtomicCounters {
  std::atomic<std::uint64_t> received{0}, relayed{0}, dropped{0}, shed{0}, failed{0}, echoes{0},
      presence{0}, fast{0};
};

void bump(std::atomic<std::uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }
std::uint64_t get(const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); }

class Bridge {
 public:
  Bridge(Core& core, std::shared_ptr<const mapping::RuleSet> rules, std::shared_ptr<RtmApi> rtm)
      : core_(core),
        outbox_(core.outbox()),
        config_(core.config().mapping),
        rules_(std::move(rules)),
        rtm_(std::move(rtm)),
        echoes_(config_.echo_ttl_ms, 100000) {}

  void install(const std::shared_ptr<Bridge>& self) {
    // One handler routes for every filter: the rule set decides which rules match.
    const auto filters = rules_->subscriptions();
    for (std::size_t i = 1; i < filters.size(); ++i) core_.add_subscription(filters[i]);
    core_.add_message_handler(filters.at(0), [self](const Message& m) { return self->on_message(m); });
    core_.set_fast_path([self](const Message& m) { return self->fast_path(m); });
    core_.add_idle_hook([self] { self->pump(); });
    core_.add_backpressure([self] { return self->qos1_.size() >= self->config_.qos1_queue; });
    core_.add_stats_line([self] { return self->stats_line(); });
  }

  BridgeCounters counters() const {
    return {get(c_.received), get(c_.relayed), get(c_.dropped), get(c_.shed),
            get(c_.failed),   get(c_.echoes),  get(c_.presence)};
  }
  std::size_t queued() const { return queued_.load(std::memory_order_relaxed); }
  std::uint64_t fast() const { return get(c_.fast); }

  // ---------------------------------------------------------------- link thread

  FastResult fast_path(const Message& m) {
    const std::int64_t now = core_.now_ms();
    if (blocked_.load(std::memory_order_acquire) > 0 || queued() > 0 || !room()) {
      // Order first: while anything waits in the loop, this message waits behind it.
      if (!rules_->matches_any(m.topic)) return FastResult::not_mine;
      blocked_.fetch_add(1, std::memory_order_acq_rel);
      return FastResult::deferred;
    }
    auto decisions = rules_->route(m.topic, m.payload, now);
    if (decisions.empty()) return FastResult::not_mine;
    for (const auto& d : decisions) {
      const bool needs_loop = d.kind == mapping::Decision::Kind::presence ||
                              (d.kind == mapping::Decision::Kind::publish && !d.publisher.empty() &&
                               !registered(d.publisher, d.channel, d.topic_name));
      if (needs_loop) {
        blocked_.fetch_add(1, std::memory_order_acq_rel);
        return FastResult::deferred;
      }
    }
    if (is_echo(m, now)) return FastResult::handled;
    bump(c_.received);
    bump(c_.fast);
    for (auto& d : decisions) {
      if (d.kind == mapping::Decision::Kind::drop) {
        bump(c_.dropped);
        log_.drop(d.rule, d.reason, now);
        continue;
      }
      // With room in the link and nothing queued, this is what the loop would do too.
      Outgoing o{std::move(d.topic), std::move(d.payload), d.qos, d.retain};
      if (!send(o)) bump(c_.failed);  // QoS 1 refused here: rare (link down); counted
    }
    return FastResult::handled;
  }

  // ---------------------------------------------------------------- loop thread

  bool on_message(const Message& m) {
    const std::int64_t now = core_.now_ms();
    bool mine = true;
    if (is_echo(m, now)) {
      // counted
    } else {
      auto decisions = rules_->route(m.topic, m.payload, now);
      if (decisions.empty()) {
        mine = false;
      } else {
        bump(c_.received);
        for (auto& d : decisions) carry_out(d, now);
        pump();
      }
    }
    // The fast path resumes once every message it deferred has been carried out.
    if (m.deferred) blocked_.fetch_sub(1, std::memory_order_acq_rel);
    return mine || m.deferred;
  }

  void pump() {
    // QoS 1 first: it is never dropped, so it must not wait behind what may be.
    while (!qos1_.empty() && room()) {
      if (!send(qos1_.front())) break;  // the link refuses: retry at the next pump
      qos1_.pop_front();
    }
    while (!qos0_.empty() && room()) {
      if (!send(qos0_.front())) bump(c_.failed);
      qos0_.pop_front();
    }
    queued_.store(qos0_.size() + qos1_.size(), std::memory_order_release);
  }

 private:
  bool room() const { return outbox_.in_flight() < config_.max_in_flight; }

  static std::string registration_key(const std::string& uid, const std::string& channel,
                                      const std::string& topic) {
    std::string key;
    key.reserve(uid.size() + channel.size() + topic.size() + 2);
    key += uid;
    key += '\n';  // not in names
    key += channel;
    key += '\n';
    key += topic;
    return key;
  }

  bool registered(const std::string& uid, const std::string& channel, const std::string& topic) {
    const auto generation = rtm_->generation();
    std::shared_lock<std::shared_mutex> lock(registered_mutex_);
    auto it = registered_.find(registration_key(uid, channel, topic));
    return it != registered_.end() && it->second == generation;
  }

  void remember_registered(const std::string& uid, const std::string& channel,
                           const std::string& topic) {
    const auto generation = rtm_->generation();
    std::unique_lock<std::shared_mutex> lock(registered_mutex_);
    if (registered_.size() > 100000) registered_.clear();  // bound; re-registered on demand
    registered_[registration_key(uid, channel, topic)] = generation;
  }

  bool is_echo(const Message& m, std::int64_t now) {
    std::lock_guard<std::mutex> lock(echo_mutex_);
    if (!echoes_.is_echo(m.topic, m.payload, now)) return false;
    bump(c_.echoes);
    return true;
  }

  bool send(const Outgoing& o) {
    if (!outbox_.publish(o.topic, o.payload, o.qos, o.retain)) return false;
    {
      std::lock_guard<std::mutex> lock(echo_mutex_);
      echoes_.published(o.topic, o.payload, core_.now_ms());
    }
    bump(c_.relayed);
    return true;
  }

  void carry_out(mapping::Decision& d, std::int64_t now) {
    switch (d.kind) {
      case mapping::Decision::Kind::drop:
        bump(c_.dropped);
        log_.drop(d.rule, d.reason, now);
        return;
      case mapping::Decision::Kind::presence:
        bump(c_.presence);
        rtm_->device_presence(d.uid, d.online);
        return;
      case mapping::Decision::Kind::publish:
        break;
    }
    if (!d.publisher.empty()) {
      std::string why;
      if (!rtm_->ensure_device_publisher(d.publisher, d.channel, d.topic_name, &why)) {
        bump(c_.dropped);
        log_.drop(d.rule, "cannot register " + d.publisher + " as a publisher: " + why, now);
        return;
      }
      remember_registered(d.publisher, d.channel, d.topic_name);
    }
    Outgoing o{std::move(d.topic), std::move(d.payload), d.qos, d.retain};
    if (qos0_.empty() && qos1_.empty() && room()) {
      if (send(o)) return;
      if (o.qos == 0) {
        bump(c_.failed);
        return;
      }
    }
    if (o.qos > 0) {
      qos1_.push_back(std::move(o));
    } else {
      if (qos0_.size() >= config_.qos0_queue) {
        qos0_.pop_front();  // a real-time stream wants the newest frames
        bump(c_.shed);
      }
      qos0_.push_back(std::move(o));
    }
    queued_.store(qos0_.size() + qos1_.size(), std::memory_order_release);
  }

  std::string stats_line() const {
    const auto c = counters();
    return "bridge received=" + std::to_string(c.received) + " relayed=" + std::to_string(c.relayed) +
           " dropped=" + std::to_string(c.dropped) + " shed=" + std::to_string(c.shed) +
           " failed=" + std::to_string(c.failed) + " echoes=" + std::to_string(c.echoes) +
           " presence=" + std::to_string(c.presence) + " queued=" + std::to_string(queued()) +
           " fast=" + std::to_string(fast());
  }

  Core& core_;
  Outbox& outbox_;  // thread-safe: used from both threads
  const MappingConfig& config_;
  std::shared_ptr<const mapping::RuleSet> rules_;
  std::shared_ptr<RtmApi> rtm_;

  AtomicCounters c_;
  std::mutex echo_mutex_;
  mapping::EchoGuard echoes_;
  RateLimitedLog log_;

  // Device publishers known to be registered, with the RtmApi generation they were
  // registered in; an entry from an older generation is treated as unknown.
  std::shared_mutex registered_mutex_;
  std::unordered_map<std::string, std::uint64_t> registered_;

  // Messages the fast path handed to the loop and the loop has not carried out yet.
  std::atomic<std::int64_t> blocked_{0};
  std::atomic<std::size_t> queued_{0};

  // Loop thread only.
  std::deque<Outgoing> qos0_;
  std::deque<Outgoing> qos1_;
};

}  // namespace

void compile_mapping(Config& config, std::vector<std::string>& problems) {
  auto& m = config.mapping;
  if (m.rules.empty() && m.presence.empty()) return;
  const topics::TopicTree tree(config.topics.prefix);
  auto compiled = mapping::RuleSet::compile(m.rules, m.presence, config.topics.prefix,
                                            {tree.request_filter(), tree.presence_filter()});
  if (!compiled) {
    for (const auto& e : compiled.error()) problems.push_back("mapping." + e.path + ": " + e.message);
    return;
  }
  m.compiled = std::make_shared<const mapping::RuleSet>(std::move(compiled).value());
}

void register_bridge(Core& core, std::shared_ptr<RtmApi> rtm) {
  std::shared_ptr<Bridge> bridge;
  if (core.config().mapping.compiled && !core.config().mapping.compiled->empty()) {
    bridge = std::make_shared<Bridge>(core, core.config().mapping.compiled, std::move(rtm));
    bridge->install(bridge);
    core.keep(bridge);
    spdlog::info("bridge: {} mapping rules, {} presence rules",
                 core.config().mapping.rules.size(), core.config().mapping.presence.size());
  }
  // `stats`: the gateway's counters, for operators and tests.
  core.add_operation({"stats", false, {}, [&core, bridge](Call&) -> Outcome<json::Document> {
                        auto doc = json::object();
                        const auto& c = core.counters();
                        auto& a = doc.GetAllocator();
                        json::Value requests(rapidjson::kObjectType);
                        requests.AddMember("received", c.requests, a);
                        requests.AddMember("ok", c.answered_ok, a);
                        requests.AddMember("errors", c.answered_error, a);
                        requests.AddMember("replayed", c.replayed, a);
                        requests.AddMember("dropped_inbound", c.dropped_inbound, a);
                        requests.AddMember("publish_failed", c.publish_failed, a);
                        json::set(doc, "requests", std::move(requests));
                        if (bridge) {
                          const auto b = bridge->counters();
                          json::Value br(rapidjson::kObjectType);
                          br.AddMember("received", b.received, a);
                          br.AddMember("relayed", b.relayed, a);
                          br.AddMember("dropped", b.dropped, a);
                          br.AddMember("shed", b.shed, a);
                          br.AddMember("failed", b.failed, a);
                          br.AddMember("echoes", b.echoes, a);
                          br.AddMember("presence", b.presence, a);
                          br.AddMember("queued", static_cast<std::uint64_t>(bridge->queued()), a);
                          json::set(doc, "bridge", std::move(br));
                        }
                        return doc;
                      }});
}

}  // namespace rtm::gateway
