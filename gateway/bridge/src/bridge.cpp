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

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <unordered_map>

#include "bridge_parts.hpp"

namespace rtm::gateway {
namespace bridge_detail {
namespace {

struct RuleCounters;

struct Outgoing {
  std::string topic;
  std::string payload;
  int qos;
  bool retain;
  RuleCounters* rule = nullptr;  // kept alive by the rules in force, or by a later reload
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

// Counted per rule, for the metrics; shared across reloads by rule name.
struct RuleCounters {
  std::atomic<std::uint64_t> relayed{0}, dropped{0};
};

// The rules in force: swapped whole by a reload, read by both threads.
struct ActiveRules {
  std::shared_ptr<const mapping::RuleSet> rules;
  std::unordered_map<std::string, std::shared_ptr<RuleCounters>> per_rule;

  RuleCounters* counters(const std::string& rule) const {
    auto it = per_rule.find(rule);
    return it == per_rule.end() ? nullptr : it->second.get();
  }
};

struct AtomicCounters {
  std::atomic<std::uint64_t> received{0}, relayed{0}, dropped{0}, shed{0}, failed{0}, echoes{0},
      presence{0}, fast{0};
};

void bump(std::atomic<std::uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }
std::uint64_t get(const std::atomic<std::uint64_t>& c) { return c.load(std::memory_order_relaxed); }

class Bridge final : public BridgeView,
                     public Reloadable,
                     public MetricsSource,
                     public MessageHandler,
                     public FastPath,
                     public IdleWork,
                     public StatsSource {
 public:
  Bridge(Core& core, std::shared_ptr<const mapping::RuleSet> rules, std::shared_ptr<RtmApi> rtm)
      : core_(core),
        outbox_(core.outbox()),
        config_(core.config().mapping),
        rtm_(std::move(rtm)),
        echoes_(config_.echo_ttl_ms, 100000) {
    set_rules(std::move(rules));
  }

  static void install(Core& core, const std::shared_ptr<Bridge>& self) {
    core.add_message_handler(self);
    core.set_fast_path(self);
    core.add_idle_work(self);
    core.add_stats_source(self);
    core.add_reloadable(self);
    core.add_metrics_source(self);
  }

  // MessageHandler: one handler routes for every filter of the rules in force (a reload
  // may change them); the rule set decides which rules match.
  std::vector<std::string> filters() const override {
    auto a = active();
    return a->rules ? a->rules->subscriptions() : std::vector<std::string>{};
  }

  // IdleWork: the queues go out as the link makes room; a full QoS 1 queue holds back.
  void on_idle() override { pump(); }
  bool holds_back() const override { return qos1_.size() >= config_.qos1_queue; }

  // Reloadable: new rules take over for the next message; counters of rules that keep
  // their name go on counting.
  void reload(const Config& next) override {
    set_rules(next.mapping.compiled);
    spdlog::info("bridge: {} mapping rules, {} presence rules in force", next.mapping.rules.size(),
                 next.mapping.presence.size());
  }

  void write_metrics(MetricsWriter& out) const override {
    const auto c = counters();
    const auto a = active();
    out.family("rtm_bridge_messages_total", MetricsWriter::Type::counter,
               "Bridged messages by mapping rule and result (relayed or dropped)");
    for (const auto& [name, rc] : a->per_rule) {
      out.sample(static_cast<double>(get(rc->relayed)), {{"rule", name}, {"result", "relayed"}});
      out.sample(static_cast<double>(get(rc->dropped)), {{"rule", name}, {"result", "dropped"}});
    }
    out.counter("rtm_bridge_received_total", "Device and RTM messages that matched a rule",
                static_cast<double>(c.received));
    out.counter("rtm_bridge_shed_total", "Bridged QoS 0 messages dropped, oldest first, on a full queue",
                static_cast<double>(c.shed));
    out.counter("rtm_bridge_failed_total", "Bridged messages the broker link refused",
                static_cast<double>(c.failed));
    out.counter("rtm_bridge_echoes_total", "The bridge's own publications seen again and ignored",
                static_cast<double>(c.echoes));
    out.counter("rtm_bridge_presence_total", "Device presence changes applied",
                static_cast<double>(c.presence));
    out.counter("rtm_bridge_fast_total", "Bridged messages routed on the broker link's thread",
                static_cast<double>(fast()));
    out.gauge("rtm_bridge_queued", "Bridged messages waiting for room in the broker link",
              static_cast<double>(queued()));
  }

  BridgeCounters counters() const override {
    return {get(c_.received), get(c_.relayed), get(c_.dropped), get(c_.shed),
            get(c_.failed),   get(c_.echoes),  get(c_.presence)};
  }
  std::size_t queued() const override { return queued_.load(std::memory_order_relaxed); }
  std::uint64_t fast() const { return get(c_.fast); }

  // ---------------------------------------------------------------- link thread

  FastResult on_link_thread(const Message& m) override {
    const std::int64_t now = core_.now_ms();
    const auto a = active();
    if (!a->rules) return FastResult::not_mine;
    if (blocked_.load(std::memory_order_acquire) > 0 || queued() > 0 || !room()) {
      // Order first: while anything waits in the loop, this message waits behind it.
      if (!a->rules->matches_any(m.topic)) return FastResult::not_mine;
      blocked_.fetch_add(1, std::memory_order_acq_rel);
      return FastResult::deferred;
    }
    auto decisions = a->rules->route(m.topic, m.payload, now);
    if (decisions.empty()) return FastResult::not_mine;
    if (auto source = rtm_source(m.topic); source && !registered(source->uid, source->channel, source->topic)) {
      // An RTM sender not known to be a publisher (or in session): the loop checks.
      blocked_.fetch_add(1, std::memory_order_acq_rel);
      return FastResult::deferred;
    }
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
        dropped(*a, d, now);
        continue;
      }
      // With room in the link and nothing queued, this is what the loop would do too.
      Outgoing o{std::move(d.topic), std::move(d.payload), d.qos, d.retain, a->counters(d.rule)};
      if (!send(o)) bump(c_.failed);  // QoS 1 refused here: rare (link down); counted
    }
    return FastResult::handled;
  }

  // ---------------------------------------------------------------- loop thread

  bool on_message(const Message& m) override {
    const std::int64_t now = core_.now_ms();
    bool mine = true;
    if (is_echo(m, now)) {
      // counted
    } else {
      const auto a = active();
      auto decisions = a->rules ? a->rules->route(m.topic, m.payload, now)
                                : std::vector<mapping::Decision>{};
      if (decisions.empty()) {
        mine = false;
      } else {
        bump(c_.received);
        std::string why;
        if (sender_allowed(m.topic, &why)) {
          for (auto& d : decisions) carry_out(*a, d, now);
        } else {
          for (auto& d : decisions) {
            d.reason = why;
            dropped(*a, d, now);
          }
        }
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
  // Who sent a message on an RTM topic that an outbound rule carries out: a channel
  // publisher (uid, channel, topic), or an inbox sender (uid, "", "", needing a session).
  struct Sender {
    std::string uid, channel, topic;
  };
  std::optional<Sender> rtm_source(const std::string& topic) const {
    const auto& prefix = core_.tree().prefix();
    if (topic.size() <= prefix.size() || topic.compare(0, prefix.size(), prefix) != 0 ||
        topic[prefix.size()] != '/') {
      return std::nullopt;  // a device topic: inbound rules trust the device topic as such
    }
    auto parsed = core_.tree().parse(topic);
    if (!parsed) return std::nullopt;
    if (parsed->kind == topics::TopicKind::channel_message) {
      return Sender{parsed->publisher, parsed->channel, parsed->topic};
    }
    if (parsed->kind == topics::TopicKind::inbox) return Sender{parsed->from, "", ""};
    return std::nullopt;
  }

  // Loop thread: only what a registered publisher (or, for an inbox, a user in session)
  // sent goes back out to devices; anyone else could write there without joining.
  bool sender_allowed(const std::string& topic, std::string* why) {
    auto source = rtm_source(topic);
    if (!source) return true;
    const bool ok = source->channel.empty()
                        ? rtm_->has_session(source->uid)
                        : rtm_->is_publisher(source->uid, source->channel, source->topic);
    if (ok) {
      remember_registered(source->uid, source->channel, source->topic);
      return true;
    }
    *why = source->channel.empty()
               ? source->uid + " has no session: its inbox messages are not relayed"
               : source->uid + " is not a publisher of topic " + source->topic + " in channel " +
                     source->channel + ": not relayed";
    return false;
  }

  std::shared_ptr<const ActiveRules> active() const { return std::atomic_load(&active_); }

  void set_rules(std::shared_ptr<const mapping::RuleSet> rules) {
    auto next = std::make_shared<ActiveRules>();
    const auto before = active();
    if (rules && !rules->empty()) {
      next->rules = std::move(rules);
      for (const auto& name : next->rules->rule_names()) {
        auto kept = before ? before->per_rule.find(name) : decltype(before->per_rule.end()){};
        next->per_rule[name] = before && kept != before->per_rule.end()
                                   ? kept->second
                                   : std::make_shared<RuleCounters>();
      }
    }
    std::atomic_store(&active_, std::shared_ptr<const ActiveRules>(std::move(next)));
  }

  void dropped(const ActiveRules& a, const mapping::Decision& d, std::int64_t now) {
    bump(c_.dropped);
    if (auto* rc = a.counters(d.rule)) bump(rc->dropped);
    log_.drop(d.rule, d.reason, now);
  }

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
    if (o.rule) bump(o.rule->relayed);
    return true;
  }

  void carry_out(const ActiveRules& a, mapping::Decision& d, std::int64_t now) {
    switch (d.kind) {
      case mapping::Decision::Kind::drop:
        dropped(a, d, now);
        return;
      case mapping::Decision::Kind::presence:
        if (!rtm_->device_presence(d.uid, d.online)) {
          d.reason = d.uid + " is a logged-in user: a device status never changes its session";
          dropped(a, d, now);
          return;
        }
        bump(c_.presence);
        return;
      case mapping::Decision::Kind::publish:
        break;
    }
    if (!d.publisher.empty()) {
      std::string why;
      if (!rtm_->ensure_device_publisher(d.publisher, d.channel, d.topic_name, &why)) {
        d.reason = "cannot register " + d.publisher + " as a publisher: " + why;
        dropped(a, d, now);
        return;
      }
      remember_registered(d.publisher, d.channel, d.topic_name);
    }
    Outgoing o{std::move(d.topic), std::move(d.payload), d.qos, d.retain, a.counters(d.rule)};
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

  std::string stats_line() const override {
    const auto c = counters();
    return "bridge received=" + std::to_string(c.received) + " relayed=" + std::to_string(c.relayed) +
           " dropped=" + std::to_string(c.dropped) + " shed=" + std::to_string(c.shed) +
           " failed=" + std::to_string(c.failed) + " echoes=" + std::to_string(c.echoes) +
           " presence=" + std::to_string(c.presence) + " queued=" + std::to_string(queued()) +
           " fast=" + std::to_string(fast());
  }

  Core& core_;
  Outbox& outbox_;  // thread-safe: used from both threads
  const MappingConfig& config_;  // the restart-only keys (queues, echo TTL) are read here
  std::shared_ptr<const ActiveRules> active_;  // std::atomic_load/store only
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

std::shared_ptr<const BridgeView> install_relay(Core& core, std::shared_ptr<RtmApi> rtm) {
  // Always there, so that a reload can bring rules to a gateway started without any.
  auto bridge = std::make_shared<Bridge>(core, core.config().mapping.compiled, std::move(rtm));
  Bridge::install(core, bridge);
  spdlog::info("bridge: {} mapping rules, {} presence rules", core.config().mapping.rules.size(),
               core.config().mapping.presence.size());
  return bridge;
}

}  // namespace bridge_detail

void register_bridge(Core& core, std::shared_ptr<RtmApi> rtm) {
  const std::shared_ptr<const bridge_detail::BridgeView> bridge =
      core.config().mapping.mode == BridgeMode::broker
          ? bridge_detail::install_broker_mode(core, std::move(rtm))
          : bridge_detail::install_relay(core, std::move(rtm));
  // `stats`: the gateway's counters, for operators (ops.uids) and tests.
  core.add_operation({"stats", false, {}, [&core, bridge](Call& call) -> Outcome<json::Document> {
                        if (!core.is_operator(call.uid)) {
                          return failure(ErrorCode::forbidden,
                                         "stats is for operators: " + call.uid +
                                             " is not in ops.uids");
                        }
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
                        {
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
