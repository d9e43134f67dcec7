#include "bridge.hpp"

#include <chrono>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "enforcement.hpp"

namespace rtm::plugin {

namespace bb = rtm::broker_bridge;

Bridge::Bridge(BridgeSettings settings, const NameSet& service_users)
    : settings_(std::move(settings)),
      service_users_(service_users),
      tree_(settings_.prefix),
      control_topic_(bb::control_topic(settings_.prefix)),
      plugin_topic_(bb::plugin_topic(settings_.prefix)),
      prefix_slash_(settings_.prefix + "/") {}

std::int64_t Bridge::now_ms() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int Bridge::message(mosquitto_evt_message& event) {
  if (event.topic == nullptr) return MOSQ_ERR_SUCCESS;
  const std::string_view topic(event.topic);
  if (topic == control_topic_) {
    apply_control(event);
    return kConsumeMessage;
  }
  if (topic == plugin_topic_) {
    // Only the plugin speaks on this topic, from inside the broker (those messages never
    // come through here): a client's message there would be a forged record.
    std::uint64_t suppressed = 0;
    if (control_log_.allow(now_s(), suppressed)) {
      const char* username = event.client ? mosquitto_client_username(event.client) : nullptr;
      mosquitto_log_printf(MOSQ_LOG_WARNING,
                           "%s: bridge: a client (username '%s') wrote to %s; "
                           "dropped (only the plugin writes there)",
                           kLogTag, loggable(username ? username : "").c_str(),
                           plugin_topic_.c_str());
    }
    return kConsumeMessage;
  }
  // route() finds no rule for most messages at the cost of matches_any(), and matches a
  // bridged one once.
  if (rules_) route(event);
  return MOSQ_ERR_SUCCESS;
}

std::optional<bb::DeviceKey> Bridge::sender_to_check(const mosquitto_evt_message& event,
                                                     std::string_view topic) const {
  if (topic.compare(0, prefix_slash_.size(), prefix_slash_) != 0) return std::nullopt;  // device
  const char* username = event.client ? mosquitto_client_username(event.client) : nullptr;
  if (username != nullptr && service_users_.count(username) > 0) return std::nullopt;
  // With the grants enforced, the broker's access check let only a registered publisher
  // (or a user in session, for an inbox) write here.
  if (settings_.enforce) return std::nullopt;
  auto parsed = tree_.parse(topic);
  if (!parsed) return std::nullopt;
  if (parsed->kind == topics::TopicKind::channel_message) {
    return bb::DeviceKey{parsed->publisher, parsed->channel, parsed->topic};
  }
  if (parsed->kind == topics::TopicKind::inbox) return bb::DeviceKey{parsed->from, "", ""};
  return std::nullopt;
}

void Bridge::carry_or_hold(bb::DeviceBook& book, const bb::DeviceKey& key, bool senders,
                           mapping::Decision& d, std::string_view payload, std::int64_t now) {
  const auto status = book.status(key.uid, key.channel, key.topic, now);
  if (status == bb::DeviceBook::Status::registered) {
    publish(d.rule, d.topic, payload, d.qos, d.retain);
    return;
  }
  if (status == bb::DeviceBook::Status::refused) {
    dropped(d.rule, book.reason(key.uid, key.channel, key.topic));
    return;
  }
  const auto held = book.hold(
      key, bb::HeldMessage{d.rule, std::move(d.topic), std::string(payload), d.qos, d.retain}, now);
  if (held == bb::DeviceBook::Held::dropped_full) {
    dropped(d.rule, senders
                        ? "too many messages wait for the gateway's check of their sender"
                        : "too many messages wait for their device's registration by the gateway");
  } else if (held == bb::DeviceBook::Held::held_announce) {
    tell_gateway(bb::encode_announce({key}, senders));
  }
  update_held();
}

void Bridge::update_held() {
  counters_.held = book_.held_messages() + senders_.held_messages();
}

bool Bridge::move(mosquitto_evt_message& event, const mapping::Decision& d, std::int64_t now) {
  // Mosquitto 2.0.11 keeps the publisher's QoS whatever the plugin says (its PUBACK depends
  // on it): only a message that already has the target's QoS can be moved.
  if (d.keep_source || d.kind != mapping::Decision::Kind::publish || d.qos != event.qos)
    return false;
  if (!d.publisher.empty() && book_.status(d.publisher, d.channel, d.topic_name, now) !=
                                  bb::DeviceBook::Status::registered) {
    return false;  // held until the gateway registered the device: a copy waits instead
  }
  char* topic = mosquitto_strdup(d.topic.c_str());
  if (topic == nullptr) return false;
  if (!d.payload_unchanged) {
    void* payload = d.payload.empty() ? nullptr : mosquitto_malloc(d.payload.size());
    if (!d.payload.empty() && payload == nullptr) {
      mosquitto_free(topic);
      return false;
    }
    if (payload != nullptr) std::memcpy(payload, d.payload.data(), d.payload.size());
    event.payload = payload;  // the broker frees the one it replaces
    event.payloadlen = static_cast<std::uint32_t>(d.payload.size());
  }
  // Mosquitto 2.0 (Debian 12's 2.0.11) takes the new topic without freeing the one it
  // replaces, so the plugin frees it. A broker that frees it itself (the 2.1 line's message
  // handling does) would need this line gone: the plugin is built and tested for 2.0.
  mosquitto_free(event.topic);
  event.topic = topic;
  event.retain = d.retain;
  count_relayed(d.rule);
  return true;
}

Bridge::RuleCounts& Bridge::counts(const std::string& rule) {
  // Messages of one rule come in runs: the last lookup is usually the right one. The map's
  // nodes (and keys) stay put until it is cleared, which it never is.
  if (last_rule_ == nullptr || *last_rule_ != rule) {
    auto it = per_rule_.try_emplace(rule).first;
    last_rule_ = &it->first;
    last_counts_ = &it->second;
  }
  return *last_counts_;
}

void Bridge::count_relayed(const std::string& rule) {
  ++counters_.relayed;
  ++counts(rule).relayed;
  ++changes_;
}

void Bridge::route(mosquitto_evt_message& event) {
  const std::string_view topic(event.topic);  // event.topic may be replaced by move()
  const std::string_view payload(static_cast<const char*>(event.payload),
                                 event.payload ? event.payloadlen : 0);
  const std::int64_t now = now_ms();
  // A payload that a rule passes unchanged is not copied: the event has it.
  auto decisions = rules_->route(topic, payload, now, mapping::PayloadCopy::unless_unchanged);
  if (decisions.empty()) return;
  ++counters_.received;
  ++changes_;
  const auto sender = sender_to_check(event, topic);
  if (!sender && decisions.size() == 1 && move(event, decisions.front(), now)) return;
  for (auto& d : decisions) {
    if (d.kind == mapping::Decision::Kind::drop) {
      dropped(d.rule, d.reason);
      continue;
    }
    // Device status topics are the gateway's: it reads them itself (a Will never comes
    // through MOSQ_EVT_MESSAGE, so the plugin could not see a device go offline).
    if (d.kind == mapping::Decision::Kind::presence) continue;
    const auto bytes = payload_of(d, payload);
    if (sender) {
      carry_or_hold(senders_, *sender, true, d, bytes, now);
    } else if (!d.publisher.empty()) {
      carry_or_hold(book_, bb::DeviceKey{d.publisher, d.channel, d.topic_name}, false, d, bytes,
                    now);
    } else {
      publish(d.rule, d.topic, bytes, d.qos, d.retain);
    }
  }
}

void Bridge::publish(const std::string& rule, const std::string& topic, std::string_view payload,
                     int qos, bool retain) {
  void* copy = nullptr;
  if (!payload.empty()) {
    copy = mosquitto_malloc(payload.size());
    if (copy == nullptr) return dropped(rule, "out of memory");
    std::memcpy(copy, payload.data(), payload.size());
  }
  // The broker takes the payload (heap, freed by it) when it accepts the message.
  const int rc = mosquitto_broker_publish(nullptr, topic.c_str(), static_cast<int>(payload.size()),
                                          copy, qos, retain, nullptr);
  if (rc != MOSQ_ERR_SUCCESS) {
    mosquitto_free(copy);
    return dropped(rule, "the broker refused to publish on " + loggable(topic) + " (error " +
                             std::to_string(rc) + ")");
  }
  count_relayed(rule);
}

void Bridge::dropped(const std::string& rule, const std::string& why) {
  ++counters_.dropped;
  ++counts(rule).dropped;
  ++changes_;
  std::uint64_t suppressed = 0;
  if (drop_log_.allow(now_s(), suppressed)) {
    mosquitto_log_printf(MOSQ_LOG_WARNING,
                         "%s: bridge: rule %s dropped a message: %s (%llu more "
                         "since the last line)",
                         kLogTag, loggable(rule).c_str(), loggable(why).c_str(),
                         static_cast<unsigned long long>(suppressed));
  }
}

void Bridge::tell_gateway(const std::string& record) {
  void* copy = mosquitto_malloc(record.size());
  if (copy == nullptr) return;
  std::memcpy(copy, record.data(), record.size());
  if (mosquitto_broker_publish(nullptr, plugin_topic_.c_str(), static_cast<int>(record.size()),
                               copy, 1, false, nullptr) != MOSQ_ERR_SUCCESS) {
    mosquitto_free(copy);
  }
}

void Bridge::apply_control(const mosquitto_evt_message& event) {
  const char* username = event.client ? mosquitto_client_username(event.client) : nullptr;
  std::uint64_t suppressed = 0;
  if (username == nullptr || settings_.gateway_user != username) {
    if (control_log_.allow(now_s(), suppressed)) {
      mosquitto_log_printf(MOSQ_LOG_WARNING,
                           "%s: bridge: a record on %s from '%s', not from the "
                           "gateway's user '%s': dropped",
                           kLogTag, control_topic_.c_str(),
                           loggable(username ? username : "").c_str(),
                           settings_.gateway_user.c_str());
    }
    return;
  }
  const std::string_view payload(static_cast<const char*>(event.payload),
                                 event.payload ? event.payloadlen : 0);
  auto record = bb::decode_control(payload);
  if (!record) {
    if (control_log_.allow(now_s(), suppressed)) {
      mosquitto_log_printf(MOSQ_LOG_ERR, "%s: bridge: a control record the plugin cannot read: %s",
                           kLogTag, loggable(record.error().message).c_str());
    }
    return;
  }
  if (record->kind == bb::Record::Kind::rules) {
    apply_rules(record->rules);
  } else {
    apply_devices(record->devices);
  }
}

void Bridge::apply_rules(const bb::RulesRecord& record) {
  if (record.instance != instance_) {
    // Another gateway process: what the previous one registered is asked again.
    if (!instance_.empty()) {
      book_.forget_registrations();
      senders_.forget_registrations();
    }
    instance_ = record.instance;
  }
  bb::RulesAnswer answer;
  answer.id = record.id;
  if (record.prefix != settings_.prefix) {
    answer.errors.push_back({"", "the gateway's topics.prefix '" + loggable(record.prefix) +
                                     "' is not the plugin's plugin_opt_topic_prefix '" +
                                     settings_.prefix + "'"});
  } else {
    auto compiled = bb::compile_rules(record.rules, record.presence, settings_.prefix);
    if (!compiled) {
      answer.errors = compiled.error();
    } else {
      rules_ = std::make_shared<const mapping::RuleSet>(std::move(compiled).value());
      rules_id_ = record.id;
      answer.ok = true;
    }
  }
  tell_gateway(bb::encode(answer));
  if (answer.ok) {
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "%s: bridge: %zu mapping rules in force (rule set %s)",
                         kLogTag, record.rules.size(), rules_id_.c_str());
  } else {
    const auto& first = answer.errors.front();
    mosquitto_log_printf(MOSQ_LOG_ERR,
                         "%s: bridge: rule set %s refused (%zu problems; first: "
                         "mapping.%s: %s); the rules in force stay",
                         kLogTag, loggable(record.id).c_str(), answer.errors.size(),
                         loggable(first.path).c_str(), loggable(first.message).c_str());
  }
}

void Bridge::apply_devices(const bb::DevicesAnswer& answer) {
  const std::int64_t now = now_ms();
  auto& book = answer.senders ? senders_ : book_;
  for (const auto& device : answer.confirmed) {
    for (auto& m : book.confirm(device)) publish(m.rule, m.topic, m.payload, m.qos, m.retain);
  }
  for (const auto& r : answer.refused) {
    const auto lost = book.refuse(r.device, r.reason, now);
    counters_.dropped += lost;
    changes_ += lost + 1;
    std::uint64_t suppressed = 0;
    if (drop_log_.allow(now_s(), suppressed)) {
      mosquitto_log_printf(MOSQ_LOG_WARNING,
                           "%s: bridge: the gateway refused %s %s: %s (%zu held "
                           "messages dropped)",
                           kLogTag, answer.senders ? "sender" : "device",
                           loggable(r.device.uid).c_str(), loggable(r.reason).c_str(), lost);
    }
  }
  for (const auto& device : answer.removed) book.remove(device);
  update_held();
}

void Bridge::tick() {
  const std::int64_t now = now_ms();
  if (rules_) {
    auto due = book_.due(now);
    if (!due.empty()) tell_gateway(bb::encode_announce(due));
    due = senders_.due(now);
    if (!due.empty()) tell_gateway(bb::encode_announce(due, true));
  }
  constexpr std::int64_t kCountersEveryMs = 1000;
  if (changes_ != counters_sent_change_ && now - counters_sent_ms_ >= kCountersEveryMs) {
    counters_sent_change_ = changes_;
    counters_sent_ms_ = now;
    update_held();
    counters_.rules.clear();
    for (const auto& [name, c] : per_rule_) counters_.rules.push_back({name, c.relayed, c.dropped});
    tell_gateway(bb::encode(counters_));
  }
}

void Bridge::reload() {
  tell_gateway(bb::encode_hello());
}

}  // namespace rtm::plugin
