#include "rtm/gateway/bridge.hpp"

#include <spdlog/spdlog.h>

#include <deque>
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
  std::unordered_map<std::string, PerRule> state_;
};

class Bridge {
 public:
  Bridge(Core& core, std::shared_ptr<const mapping::RuleSet> rules, std::shared_ptr<RtmApi> rtm)
      : core_(core),
        config_(core.config().mapping),
        rules_(std::move(rules)),
        rtm_(std::move(rtm)),
        echoes_(config_.echo_ttl_ms, 100000) {}

  void install(const std::shared_ptr<Bridge>& self) {
    // One handler routes for every filter: the rule set decides which rules match.
    const auto filters = rules_->subscriptions();
    for (std::size_t i = 1; i < filters.size(); ++i) core_.add_subscription(filters[i]);
    core_.add_message_handler(filters.at(0), [self](const Message& m) { return self->on_message(m); });
    core_.add_idle_hook([self] { self->pump(); });
    core_.add_backpressure([self] { return self->qos1_.size() >= self->config_.qos1_queue; });
    core_.add_stats_line([self] { return self->stats_line(); });
  }

  const BridgeCounters& counters() const { return counters_; }
  std::size_t queued() const { return qos0_.size() + qos1_.size(); }

  bool on_message(const Message& m) {
    const std::int64_t now = core_.now_ms();
    if (echoes_.is_echo(m.topic, m.payload, now)) {
      ++counters_.echoes;
      return true;
    }
    auto decisions = rules_->route(m.topic, m.payload, now);
    if (decisions.empty()) return false;
    ++counters_.received;
    for (auto& d : decisions) carry_out(d, now);
    pump();
    return true;
  }

  void pump() {
    // QoS 1 first: it is never dropped, so it must not wait behind what may be.
    while (!qos1_.empty() && room()) {
      if (!send(qos1_.front())) return;  // the link refuses: retry at the next pump
      qos1_.pop_front();
    }
    while (!qos0_.empty() && room()) {
      if (!send(qos0_.front())) ++counters_.failed;
      qos0_.pop_front();
    }
  }

 private:
  bool room() const { return core_.in_flight() < config_.max_in_flight; }

  bool send(const Outgoing& o) {
    if (!core_.publish(o.topic, o.payload, o.qos, o.retain)) return false;
    echoes_.published(o.topic, o.payload, core_.now_ms());
    ++counters_.relayed;
    return true;
  }

  void carry_out(mapping::Decision& d, std::int64_t now) {
    switch (d.kind) {
      case mapping::Decision::Kind::drop:
        ++counters_.dropped;
        log_.drop(d.rule, d.reason, now);
        return;
      case mapping::Decision::Kind::presence:
        ++counters_.presence;
        rtm_->device_presence(d.uid, d.online);
        return;
      case mapping::Decision::Kind::publish:
        break;
    }
    if (!d.publisher.empty()) {
      std::string why;
      if (!rtm_->ensure_device_publisher(d.publisher, d.channel, d.topic_name, &why)) {
        ++counters_.dropped;
        log_.drop(d.rule, "cannot register " + d.publisher + " as a publisher: " + why, now);
        return;
      }
    }
    Outgoing o{std::move(d.topic), std::move(d.payload), d.qos, d.retain};
    if (qos0_.empty() && qos1_.empty() && room()) {
      if (send(o)) return;
      if (o.qos == 0) {
        ++counters_.failed;
        return;
      }
    }
    if (o.qos > 0) {
      qos1_.push_back(std::move(o));
      return;
    }
    if (qos0_.size() >= config_.qos0_queue) {
      qos0_.pop_front();  // a real-time stream wants the newest frames
      ++counters_.shed;
    }
    qos0_.push_back(std::move(o));
  }

  std::string stats_line() const {
    const auto& c = counters_;
    return "bridge received=" + std::to_string(c.received) + " relayed=" + std::to_string(c.relayed) +
           " dropped=" + std::to_string(c.dropped) + " shed=" + std::to_string(c.shed) +
           " failed=" + std::to_string(c.failed) + " echoes=" + std::to_string(c.echoes) +
           " presence=" + std::to_string(c.presence) + " queued=" + std::to_string(queued());
  }

  Core& core_;
  const MappingConfig& config_;
  std::shared_ptr<const mapping::RuleSet> rules_;
  std::shared_ptr<RtmApi> rtm_;
  mapping::EchoGuard echoes_;
  BridgeCounters counters_;
  std::deque<Outgoing> qos0_;
  std::deque<Outgoing> qos1_;
  RateLimitedLog log_;

  friend void register_bridge(Core&, std::shared_ptr<RtmApi>);
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
                          const auto& b = bridge->counters();
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
