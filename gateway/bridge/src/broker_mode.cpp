// mapping.mode broker: the broker's plugin (plugin_opt_bridge true) carries the mapping
// rules out; the gateway keeps the RTM side. It sends the rules to the plugin (at every
// connection, at a reload, when the plugin asks after the broker's own reload), registers
// each device the plugin announces as a publisher and answers, tells the plugin when a
// registration ends, and reads the devices' status topics itself (presence).
#include <spdlog/spdlog.h>

#include <unordered_map>
#include <utility>

#include "bridge_parts.hpp"
#include "rtm/broker_bridge/records.hpp"
#include "rtm/util/random.hpp"

namespace rtm::gateway::bridge_detail {
namespace {

namespace bb = rtm::broker_bridge;

// How often registrations are checked for ones that ended (when anything was removed).
constexpr std::int64_t kSweepEveryMs = 100;
// How long a rule set may wait for the plugin's answer before the gateway says so.
constexpr std::int64_t kAnswerWarningMs = 5000;
constexpr std::size_t kMaxTrackedDevices = 100000;

struct RuleSetSpecs {
  std::string id;
  std::vector<mapping::RuleSpec> rules;
  std::vector<mapping::PresenceRuleSpec> presence;
  std::shared_ptr<const mapping::RuleSet> presence_rules;  // the presence rules alone
};

RuleSetSpecs specs_of(const MappingConfig& m, const std::string& prefix) {
  RuleSetSpecs s{bb::rules_id(m.rules, m.presence), m.rules, m.presence, nullptr};
  if (!m.presence.empty()) {
    auto compiled = bb::compile_rules({}, m.presence, prefix);
    if (compiled)
      s.presence_rules = std::make_shared<const mapping::RuleSet>(std::move(compiled).value());
  }
  return s;
}

std::string key_of(const bb::DeviceKey& d) {
  return d.uid + '\n' + d.channel + '\n' + d.topic;
}

class BrokerMode final : public BridgeView,
                         public MessageHandler,
                         public Reloadable,
                         public MetricsSource,
                         public IdleWork,
                         public BrokerSessionObserver {
 public:
  BrokerMode(Core& core, std::shared_ptr<RtmApi> rtm)
      : core_(core),
        rtm_(std::move(rtm)),
        prefix_(core.tree().prefix()),
        control_topic_(bb::control_topic(prefix_)),
        plugin_topic_(bb::plugin_topic(prefix_)),
        instance_(util::random_hex(16)),
        current_(specs_of(core.config().mapping, prefix_)) {}

  // The plugin's records come to every gateway of a cluster (each must hear the answer to
  // the rules it sent); device status topics to one of them.
  struct PluginRecords final : MessageHandler {
    BrokerMode* owner = nullptr;
    std::vector<std::string> filters() const override { return {owner->plugin_topic_}; }
    bool per_gateway() const override { return true; }
    bool on_message(const Message& m) override {
      return m.topic == owner->plugin_topic_ && owner->on_plugin_record(m);
    }
  };

  static void install(Core& core, const std::shared_ptr<BrokerMode>& self) {
    self->records_ = std::make_shared<PluginRecords>();
    self->records_->owner = self.get();
    core.add_message_handler(self->records_);
    core.add_message_handler(self);
    core.add_reloadable(self);
    core.add_metrics_source(self);
    core.add_idle_work(self);
    core.add_broker_session_observer(self);
  }

  // ---------------------------------------------------------------- BridgeView
  BridgeCounters counters() const override {
    return {plugin_.received, plugin_.relayed, plugin_.dropped, 0, 0, 0, presence_};
  }
  std::size_t queued() const override { return static_cast<std::size_t>(plugin_.held); }

  // ---------------------------------------------------------------- device status
  // While a reload's set waits for the plugin, both sets' status topics are read (a reload
  // diffs the subscriptions once; the extra ones go at the next reload).
  std::vector<std::string> filters() const override {
    std::vector<std::string> out;
    for (const RuleSetSpecs* specs :
         {&current_, static_cast<const RuleSetSpecs*>(pending_.get())}) {
      if (specs == nullptr || !specs->presence_rules) continue;
      for (auto& f : specs->presence_rules->subscriptions()) out.push_back(std::move(f));
    }
    return out;
  }

  bool on_message(const Message& m) override {
    if (!current_.presence_rules) return false;
    auto decisions = current_.presence_rules->route(m.topic, m.payload, core_.now_ms());
    if (decisions.empty()) return false;
    for (const auto& d : decisions) {
      if (d.kind != mapping::Decision::Kind::presence) continue;
      if (rtm_->device_presence(d.uid, d.online)) {
        ++presence_;
      } else {
        spdlog::warn(
            "bridge: rule {}: {} is a logged-in user: a device status never changes its "
            "session",
            d.rule, d.uid);
      }
    }
    return true;
  }

  // ---------------------------------------------------------------- rules
  // A broker that lost the gateway's session restarted: its plugin lost the rules too, and
  // gets them at the connection that follows.
  void on_broker_session_lost() override {}
  void on_broker_connected() override { send_rules(pending_ ? *pending_ : current_); }

  void reload(const Config& next) override {
    auto candidate = specs_of(next.mapping, prefix_);
    if (candidate.id == current_.id && !pending_) return;
    spdlog::info(
        "bridge: rule set {} sent to the broker's plugin; the rules in force ({}) stay "
        "until it takes them",
        candidate.id, current_.id);
    pending_ = std::make_unique<RuleSetSpecs>(std::move(candidate));
    send_rules(*pending_);
  }

  void send_rules(const RuleSetSpecs& specs) {
    bb::RulesRecord record{specs.id, instance_, prefix_, specs.rules, specs.presence};
    if (!core_.outbox().publish(control_topic_, bb::encode(record), 1, false)) {
      spdlog::warn(
          "bridge: the rules could not be sent to the broker's plugin now; sent again "
          "at the next connection");
    }
    sent_id_ = specs.id;
    sent_ms_ = core_.now_ms();
    warned_ = false;
  }

  void on_answer(const bb::RulesAnswer& answer) {
    if (answer.id != sent_id_) return;  // an answer to an older set
    sent_id_.clear();
    plugin_accepted_ = answer.ok;
    if (answer.ok) {
      if (pending_ && pending_->id == answer.id) {
        current_ = std::move(*pending_);
        pending_.reset();
      }
      spdlog::info(
          "bridge: the broker's plugin carries rule set {} ({} rules, {} presence rules "
          "read by the gateway)",
          answer.id, current_.rules.size(), current_.presence.size());
      return;
    }
    for (const auto& e : answer.errors) {
      spdlog::error("bridge: the broker's plugin refused rule set {}: {}{}{}", answer.id,
                    e.path.empty() ? "" : "mapping.", e.path,
                    (e.path.empty() ? "" : ": ") + e.message);
    }
    if (pending_ && pending_->id == answer.id) {
      spdlog::error(
          "bridge: rule set {} refused by the broker's plugin, so by the gateway too: the "
          "rules in force ({}) stay",
          answer.id, current_.id);
      pending_.reset();
    }
  }

  // ---------------------------------------------------------------- devices
  bool on_plugin_record(const Message& m) {
    auto record = bb::decode_plugin(m.payload);
    if (!record) {
      ++bad_records_;
      spdlog::warn(
          "bridge: a record from the broker's plugin the gateway cannot read ({} bytes, "
          "retained {}): {}",
          m.payload.size(), m.retained, record.error().message);
      return true;
    }
    switch (record->kind) {
      case bb::Record::Kind::hello:
        spdlog::info("bridge: the broker's plugin (re)loaded: rule set {} sent again", current_.id);
        send_rules(pending_ ? *pending_ : current_);
        break;
      case bb::Record::Kind::rules_answer:
        on_answer(record->rules_answer);
        break;
      case bb::Record::Kind::announce:
        if (record->senders) {
          check_senders(record->announce);
        } else {
          register_devices(record->announce);
        }
        break;
      case bb::Record::Kind::counters:
        plugin_ = std::move(record->counters);
        break;
      default:
        ++bad_records_;
        break;
    }
    return true;
  }

  void register_devices(const std::vector<bb::DeviceKey>& devices) {
    bb::DevicesAnswer answer;
    for (const auto& d : devices) {
      std::string why;
      if (rtm_->ensure_device_publisher(d.uid, d.channel, d.topic, &why)) {
        if (registered_.size() < kMaxTrackedDevices) registered_.emplace(key_of(d), d);
        answer.confirmed.push_back(d);
      } else {
        answer.refused.push_back({d, why});
        spdlog::warn("bridge: cannot register {} as a publisher of {} in {}: {}", d.uid, d.topic,
                     d.channel, why);
      }
    }
    ++announced_;
    core_.outbox().publish(control_topic_, bb::encode(answer), 1, false);
  }

  // Whose messages an outbound rule may carry to devices: a publisher of the channel topic,
  // or (an inbox message) a user in session, as the relay checks.
  bool sender_ok(const bb::DeviceKey& d) const {
    return d.channel.empty() ? rtm_->has_session(d.uid)
                             : rtm_->is_publisher(d.uid, d.channel, d.topic);
  }

  void check_senders(const std::vector<bb::DeviceKey>& senders) {
    bb::DevicesAnswer answer;
    answer.senders = true;
    for (const auto& d : senders) {
      if (sender_ok(d)) {
        if (senders_.size() < kMaxTrackedDevices) senders_.emplace(key_of(d), d);
        answer.confirmed.push_back(d);
      } else {
        answer.refused.push_back(
            {d, d.channel.empty() ? d.uid + " has no session: its inbox messages are not relayed"
                                  : d.uid + " is not a publisher of topic " + d.topic +
                                        " in channel " + d.channel + ": not relayed"});
      }
    }
    core_.outbox().publish(control_topic_, bb::encode(answer), 1, false);
  }

  // IdleWork: registrations that ended (the device went offline, an operator kicked it)
  // are reported, so the plugin announces the device again at its next message.
  void on_idle() override {
    const auto now = core_.now_ms();
    if (!sent_id_.empty() && !warned_ && now - sent_ms_ >= kAnswerWarningMs) {
      warned_ = true;
      spdlog::warn(
          "bridge: mapping.mode broker, but the broker's plugin has not answered rule set "
          "{} in {} ms: is rtm_mosquitto_auth loaded with plugin_opt_bridge true?",
          sent_id_, kAnswerWarningMs);
    }
    const auto generation = rtm_->generation();
    if (generation == swept_generation_ || now - swept_ms_ < kSweepEveryMs) return;
    swept_generation_ = generation;
    swept_ms_ = now;
    report_ended(registered_, false, [this](const bb::DeviceKey& d) {
      return rtm_->is_publisher(d.uid, d.channel, d.topic);
    });
    report_ended(senders_, true, [this](const bb::DeviceKey& d) { return sender_ok(d); });
  }

  template <class StillThere>
  void report_ended(std::unordered_map<std::string, bb::DeviceKey>& known, bool senders,
                    StillThere still_there) {
    bb::DevicesAnswer answer;
    answer.senders = senders;
    for (auto it = known.begin(); it != known.end();) {
      if (still_there(it->second)) {
        ++it;
        continue;
      }
      answer.removed.push_back(it->second);
      it = known.erase(it);
      if (answer.removed.size() >= bb::kMaxDevicesPerRecord) break;
    }
    if (!answer.removed.empty())
      core_.outbox().publish(control_topic_, bb::encode(answer), 1, false);
  }

  void write_metrics(MetricsWriter& out) const override {
    out.family("rtm_bridge_messages_total", MetricsWriter::Type::counter,
               "Bridged messages by mapping rule and result (relayed or dropped)");
    for (const auto& r : plugin_.rules) {
      out.sample(static_cast<double>(r.relayed), {{"rule", r.name}, {"result", "relayed"}});
      out.sample(static_cast<double>(r.dropped), {{"rule", r.name}, {"result", "dropped"}});
    }
    out.counter("rtm_bridge_received_total", "Device and RTM messages that matched a rule",
                static_cast<double>(plugin_.received));
    out.counter("rtm_bridge_presence_total", "Device presence changes applied",
                static_cast<double>(presence_));
    out.gauge("rtm_bridge_queued", "Bridged messages waiting for their device's registration",
              static_cast<double>(plugin_.held));
    out.gauge("rtm_bridge_plugin_rules_accepted",
              "1 when the broker's plugin took the gateway's last rule set, 0 when it refused it",
              plugin_accepted_ ? 1.0 : 0.0);
    out.counter("rtm_bridge_plugin_announcements_total",
                "Records of new devices the broker's plugin announced",
                static_cast<double>(announced_));
    out.counter("rtm_bridge_plugin_bad_records_total",
                "Records from the broker's plugin the gateway could not read",
                static_cast<double>(bad_records_));
  }

 private:
  Core& core_;
  std::shared_ptr<RtmApi> rtm_;
  const std::string prefix_, control_topic_, plugin_topic_, instance_;
  std::shared_ptr<PluginRecords> records_;
  RuleSetSpecs current_;                   // in force: the plugin took it (or the start set)
  std::unique_ptr<RuleSetSpecs> pending_;  // a reload's set, until the plugin answers
  std::string sent_id_;                    // the set whose answer is awaited
  std::int64_t sent_ms_ = 0;
  bool warned_ = false;
  bool plugin_accepted_ = false;
  std::unordered_map<std::string, bb::DeviceKey> registered_;  // devices the plugin was told of
  std::unordered_map<std::string, bb::DeviceKey> senders_;     // senders it was told are fine
  std::uint64_t swept_generation_ = 0;
  std::int64_t swept_ms_ = 0;
  bb::Counters plugin_;  // the plugin's latest counters
  std::uint64_t presence_ = 0, announced_ = 0, bad_records_ = 0;
};

}  // namespace

std::shared_ptr<const BridgeView> install_broker_mode(Core& core, std::shared_ptr<RtmApi> rtm) {
  auto mode = std::make_shared<BrokerMode>(core, std::move(rtm));
  BrokerMode::install(core, mode);
  spdlog::info(
      "bridge: mapping.mode broker: the broker's plugin carries {} mapping rules; the "
      "gateway reads {} device status rules",
      core.config().mapping.rules.size(), core.config().mapping.presence.size());
  return mode;
}

}  // namespace rtm::gateway::bridge_detail
