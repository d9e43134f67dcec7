// The zero-hop bridge's records: JSON written with rapidjson, read back field by field with
// every field's type and size checked (the plugin runs inside the broker).
#include "rtm/broker_bridge/records.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <initializer_list>
#include <utility>

#include "rtm/mapping/json.hpp"
#include "rtm/topics/tree.hpp"
#include "rtm/util/fnv.hpp"

namespace rtm::broker_bridge {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr std::size_t kMaxRulesPerRecord = 10000;
constexpr std::size_t kMaxFieldsPerEnvelope = 1000;

void put(Writer& w, const char* key, const std::string& value) {
  w.Key(key);
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void head(Writer& w, const char* kind) {
  w.StartObject();
  w.Key("v");
  w.Int(kRecordVersion);
  w.Key("kind");
  w.String(kind);
}

const char* transform_name(mapping::TransformKind kind) {
  switch (kind) {
    case mapping::TransformKind::envelope:
      return "envelope";
    case mapping::TransformKind::extract:
      return "extract";
    case mapping::TransformKind::pass:
      break;
  }
  return "pass";
}

// A source or a target: both have the same fields (each kind of rule fills some of them).
template <class Endpoint>
void write_endpoint(Writer& w, const char* key, const Endpoint& e) {
  w.Key(key);
  w.StartObject();
  put(w, "device_topic", e.device_topic);
  put(w, "channel", e.channel);
  put(w, "topic", e.topic);
  put(w, "publisher", e.publisher);
  put(w, "to", e.inbox_to);
  put(w, "from", e.inbox_from);
  w.EndObject();
}

// A JSON array of strings: a device key, a refusal, an envelope field.
void write_strings(Writer& w, std::initializer_list<const std::string*> items) {
  w.StartArray();
  for (const auto* item : items)
    w.String(item->data(), static_cast<rapidjson::SizeType>(item->size()));
  w.EndArray();
}

void write_rules(Writer& w, const std::vector<mapping::RuleSpec>& rules,
                 const std::vector<mapping::PresenceRuleSpec>& presence) {
  w.Key("rules");
  w.StartArray();
  for (const auto& r : rules) {
    w.StartObject();
    put(w, "name", r.name);
    put(w, "direction", r.direction == mapping::Direction::inbound ? "inbound" : "outbound");
    write_endpoint(w, "source", r.source);
    write_endpoint(w, "target", r.target);
    w.Key("transform");
    w.StartObject();
    put(w, "type", transform_name(r.transform.kind));
    put(w, "pointer", r.transform.pointer);
    w.Key("fields");
    w.StartArray();
    for (const auto& f : r.transform.fields) write_strings(w, {&f.name, &f.value});
    w.EndArray();
    w.EndObject();
    w.Key("qos");
    w.Int(r.qos);
    w.Key("retain");
    w.Bool(r.retain);
    w.Key("keep_source");
    w.Bool(r.keep_source);
    w.EndObject();
  }
  w.EndArray();
  w.Key("presence");
  w.StartArray();
  for (const auto& p : presence) {
    w.StartObject();
    put(w, "name", p.name);
    put(w, "source", p.source);
    put(w, "uid", p.uid);
    put(w, "online", p.online_payload);
    put(w, "offline", p.offline_payload);
    w.EndObject();
  }
  w.EndArray();
}

void write_devices(Writer& w, const char* key, const std::vector<DeviceKey>& devices) {
  w.Key(key);
  w.StartArray();
  for (const auto& d : devices) write_strings(w, {&d.uid, &d.channel, &d.topic});
  w.EndArray();
}

std::string text_of(rapidjson::StringBuffer& buffer) {
  return std::string(buffer.GetString(), buffer.GetSize());
}

// ---------------------------------------------------------------- reading

// Reads fields of one object; the first problem wins and carries its path.
class Reader {
 public:
  Reader(const rapidjson::Value& object, std::string path, std::string* error)
      : object_(object), path_(std::move(path)), error_(error) {}

  bool ok() const { return error_->empty(); }

  void string(const char* key, std::string& out, bool required = false) {
    if (!ok()) return;
    auto it = object_.FindMember(key);
    if (it == object_.MemberEnd()) {
      if (required) fail(key, "is missing");
      return;
    }
    if (!it->value.IsString()) return fail(key, "must be a string");
    out.assign(it->value.GetString(), it->value.GetStringLength());
  }

  void integer(const char* key, int& out, int low, int high) {
    if (!ok()) return;
    auto it = object_.FindMember(key);
    if (it == object_.MemberEnd()) return;
    if (!it->value.IsInt() || it->value.GetInt() < low || it->value.GetInt() > high) {
      return fail(key,
                  "must be an integer from " + std::to_string(low) + " to " + std::to_string(high));
    }
    out = it->value.GetInt();
  }

  void boolean(const char* key, bool& out) {
    if (!ok()) return;
    auto it = object_.FindMember(key);
    if (it == object_.MemberEnd()) return;
    if (!it->value.IsBool()) return fail(key, "must be true or false");
    out = it->value.GetBool();
  }

  // An array member (absent: an empty one); nullptr after a problem.
  const rapidjson::Value* array(const char* key, std::size_t max) {
    static const rapidjson::Value kEmpty(rapidjson::kArrayType);
    if (!ok()) return nullptr;
    auto it = object_.FindMember(key);
    if (it == object_.MemberEnd()) return &kEmpty;
    if (!it->value.IsArray()) {
      fail(key, "must be a list");
      return nullptr;
    }
    if (it->value.Size() > max) {
      fail(key, "has more than " + std::to_string(max) + " entries");
      return nullptr;
    }
    return &it->value;
  }

  const rapidjson::Value* object(const char* key) {
    if (!ok()) return nullptr;
    auto it = object_.FindMember(key);
    if (it == object_.MemberEnd() || !it->value.IsObject()) {
      fail(key, "must be an object");
      return nullptr;
    }
    return &it->value;
  }

  std::string at(const char* key) const { return path_.empty() ? key : path_ + "." + key; }

  void fail(const char* key, const std::string& what) {
    if (ok()) *error_ = at(key) + " " + what;
  }

 private:
  const rapidjson::Value& object_;
  std::string path_;
  std::string* error_;
};

std::string indexed(const std::string& base, std::size_t i) {
  return base + "[" + std::to_string(i) + "]";
}

template <class Endpoint>
bool read_endpoint(const rapidjson::Value& v, const std::string& path, std::string* error,
                   Endpoint& e) {
  if (!v.IsObject()) {
    *error = path + " must be an object";
    return false;
  }
  Reader r(v, path, error);
  r.string("device_topic", e.device_topic);
  r.string("channel", e.channel);
  r.string("topic", e.topic);
  r.string("publisher", e.publisher);
  r.string("to", e.inbox_to);
  r.string("from", e.inbox_from);
  return r.ok();
}

bool read_rule(const rapidjson::Value& v, const std::string& path, std::string* error,
               mapping::RuleSpec& rule) {
  if (!v.IsObject()) {
    *error = path + " must be an object";
    return false;
  }
  Reader r(v, path, error);
  r.string("name", rule.name, true);
  std::string direction;
  r.string("direction", direction, true);
  if (!r.ok()) return false;
  if (direction == "inbound") {
    rule.direction = mapping::Direction::inbound;
  } else if (direction == "outbound") {
    rule.direction = mapping::Direction::outbound;
  } else {
    r.fail("direction", "must be inbound or outbound, got \"" + direction.substr(0, 32) + "\"");
    return false;
  }
  const auto* source = r.object("source");
  const auto* target = r.object("target");
  const auto* transform = r.object("transform");
  if (!r.ok()) return false;
  if (!read_endpoint(*source, r.at("source"), error, rule.source) ||
      !read_endpoint(*target, r.at("target"), error, rule.target)) {
    return false;
  }
  Reader t(*transform, r.at("transform"), error);
  std::string type = "pass";
  t.string("type", type);
  t.string("pointer", rule.transform.pointer);
  const auto* fields = t.array("fields", kMaxFieldsPerEnvelope);
  if (!t.ok()) return false;
  if (type == "pass") {
    rule.transform.kind = mapping::TransformKind::pass;
  } else if (type == "envelope") {
    rule.transform.kind = mapping::TransformKind::envelope;
  } else if (type == "extract") {
    rule.transform.kind = mapping::TransformKind::extract;
  } else {
    t.fail("type", "must be pass, envelope or extract, got \"" + type.substr(0, 32) + "\"");
    return false;
  }
  for (rapidjson::SizeType i = 0; i < fields->Size(); ++i) {
    const auto& f = (*fields)[i];
    if (!f.IsArray() || f.Size() != 2 || !f[0].IsString() || !f[1].IsString()) {
      *error = indexed(t.at("fields"), i) + " must be [name, template]";
      return false;
    }
    rule.transform.fields.push_back({std::string(f[0].GetString(), f[0].GetStringLength()),
                                     std::string(f[1].GetString(), f[1].GetStringLength())});
  }
  r.integer("qos", rule.qos, 0, 1);
  r.boolean("retain", rule.retain);
  r.boolean("keep_source", rule.keep_source);
  return r.ok();
}

bool read_presence(const rapidjson::Value& v, const std::string& path, std::string* error,
                   mapping::PresenceRuleSpec& rule) {
  if (!v.IsObject()) {
    *error = path + " must be an object";
    return false;
  }
  Reader r(v, path, error);
  r.string("name", rule.name, true);
  r.string("source", rule.source, true);
  r.string("uid", rule.uid, true);
  r.string("online", rule.online_payload);
  r.string("offline", rule.offline_payload);
  return r.ok();
}

bool read_devices(const rapidjson::Value& list, const std::string& path, std::string* error,
                  std::vector<DeviceKey>& out, std::vector<RefusedDevice>* refused = nullptr) {
  for (rapidjson::SizeType i = 0; i < list.Size(); ++i) {
    const auto& d = list[i];
    const rapidjson::SizeType size = refused ? 4 : 3;
    bool good = d.IsArray() && d.Size() == size;
    for (rapidjson::SizeType k = 0; good && k < size; ++k) good = d[k].IsString();
    if (!good) {
      *error = indexed(path, i) + (refused ? " must be [uid, channel, topic, reason]"
                                           : " must be [uid, channel, topic]");
      return false;
    }
    DeviceKey key{std::string(d[0].GetString(), d[0].GetStringLength()),
                  std::string(d[1].GetString(), d[1].GetStringLength()),
                  std::string(d[2].GetString(), d[2].GetStringLength())};
    if (refused) {
      refused->push_back({std::move(key), std::string(d[3].GetString(), d[3].GetStringLength())});
    } else {
      out.push_back(std::move(key));
    }
  }
  return true;
}

// Parses the common head: a bounded JSON object of version 1 with a kind.
Expected<std::string, Error> read_head(std::string_view payload, rapidjson::Document& doc) {
  if (payload.size() > kMaxRecordBytes) {
    return Error{"record is larger than " + std::to_string(kMaxRecordBytes) + " bytes"};
  }
  if (auto why = mapping::parse_untrusted_json(payload, doc)) return Error{*why};
  if (!doc.IsObject()) return Error{"record is not a JSON object"};
  auto v = doc.FindMember("v");
  if (v == doc.MemberEnd() || !v->value.IsInt() || v->value.GetInt() != kRecordVersion) {
    return Error{"record version is not " + std::to_string(kRecordVersion)};
  }
  auto kind = doc.FindMember("kind");
  if (kind == doc.MemberEnd() || !kind->value.IsString()) return Error{"record has no kind"};
  return std::string(kind->value.GetString(), kind->value.GetStringLength());
}

}  // namespace

std::string control_topic(const std::string& prefix) {
  return prefix + "/gateway/bridge/control";
}
std::string plugin_topic(const std::string& prefix) {
  return prefix + "/gateway/bridge/plugin";
}

std::string rules_id(const std::vector<mapping::RuleSpec>& rules,
                     const std::vector<mapping::PresenceRuleSpec>& presence) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  write_rules(w, rules, presence);
  w.EndObject();
  return util::hash_hex(util::fnv1a64(std::string_view(buffer.GetString(), buffer.GetSize())));
}

std::string encode(const RulesRecord& record) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  head(w, "rules");
  put(w, "id", record.id);
  put(w, "instance", record.instance);
  put(w, "prefix", record.prefix);
  write_rules(w, record.rules, record.presence);
  w.EndObject();
  return text_of(buffer);
}

std::string encode(const RulesAnswer& answer) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  head(w, "rules");
  put(w, "id", answer.id);
  w.Key("ok");
  w.Bool(answer.ok);
  w.Key("errors");
  w.StartArray();
  for (const auto& e : answer.errors) {
    w.StartObject();
    put(w, "path", e.path);
    put(w, "message", e.message);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return text_of(buffer);
}

std::string encode(const DevicesAnswer& answer) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  head(w, answer.senders ? "senders" : "devices");
  write_devices(w, "confirmed", answer.confirmed);
  w.Key("refused");
  w.StartArray();
  for (const auto& r : answer.refused) {
    write_strings(w, {&r.device.uid, &r.device.channel, &r.device.topic, &r.reason});
  }
  w.EndArray();
  write_devices(w, "removed", answer.removed);
  w.EndObject();
  return text_of(buffer);
}

std::string encode_hello() {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  head(w, "hello");
  w.EndObject();
  return text_of(buffer);
}

std::string encode_announce(const std::vector<DeviceKey>& devices, bool senders) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  head(w, senders ? "senders" : "devices");
  write_devices(w, "announce", devices);
  w.EndObject();
  return text_of(buffer);
}

std::string encode(const Counters& counters) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  head(w, "counters");
  w.Key("received");
  w.Uint64(counters.received);
  w.Key("relayed");
  w.Uint64(counters.relayed);
  w.Key("dropped");
  w.Uint64(counters.dropped);
  w.Key("held");
  w.Uint64(counters.held);
  w.Key("rules");
  w.StartArray();
  for (const auto& r : counters.rules) {
    w.StartArray();
    w.String(r.name.data(), static_cast<rapidjson::SizeType>(r.name.size()));
    w.Uint64(r.relayed);
    w.Uint64(r.dropped);
    w.EndArray();
  }
  w.EndArray();
  w.EndObject();
  return text_of(buffer);
}

Expected<mapping::RuleSet, std::vector<mapping::RuleError>> compile_rules(
    const std::vector<mapping::RuleSpec>& rules,
    const std::vector<mapping::PresenceRuleSpec>& presence, const std::string& prefix) {
  const topics::TopicTree tree(prefix);
  return mapping::RuleSet::compile(rules, presence, prefix,
                                   {tree.request_filter(), tree.presence_filter()});
}

Expected<Record, Error> decode_control(std::string_view payload) {
  rapidjson::Document doc;
  auto kind = read_head(payload, doc);
  if (!kind) return kind.error();
  Record out;
  std::string error;
  Reader r(doc, "", &error);
  if (*kind == "rules") {
    out.kind = Record::Kind::rules;
    r.string("id", out.rules.id, true);
    r.string("instance", out.rules.instance);
    r.string("prefix", out.rules.prefix, true);
    const auto* rules = r.array("rules", kMaxRulesPerRecord);
    const auto* presence = r.array("presence", kMaxRulesPerRecord);
    if (!r.ok()) return Error{error};
    for (rapidjson::SizeType i = 0; i < rules->Size(); ++i) {
      mapping::RuleSpec rule;
      if (!read_rule((*rules)[i], indexed("rules", i), &error, rule)) return Error{error};
      out.rules.rules.push_back(std::move(rule));
    }
    for (rapidjson::SizeType i = 0; i < presence->Size(); ++i) {
      mapping::PresenceRuleSpec rule;
      if (!read_presence((*presence)[i], indexed("presence", i), &error, rule)) {
        return Error{error};
      }
      out.rules.presence.push_back(std::move(rule));
    }
    return out;
  }
  if (*kind == "devices" || *kind == "senders") {
    out.kind = Record::Kind::devices;
    out.devices.senders = *kind == "senders";
    const auto* confirmed = r.array("confirmed", kMaxDevicesPerRecord);
    const auto* refused = r.array("refused", kMaxDevicesPerRecord);
    const auto* removed = r.array("removed", kMaxDevicesPerRecord);
    if (!r.ok()) return Error{error};
    if (!read_devices(*confirmed, "confirmed", &error, out.devices.confirmed) ||
        !read_devices(*refused, "refused", &error, out.devices.confirmed, &out.devices.refused) ||
        !read_devices(*removed, "removed", &error, out.devices.removed)) {
      return Error{error};
    }
    return out;
  }
  return Error{"unknown control record kind \"" + kind->substr(0, 32) + "\""};
}

Expected<Record, Error> decode_plugin(std::string_view payload) {
  rapidjson::Document doc;
  auto kind = read_head(payload, doc);
  if (!kind) return kind.error();
  Record out;
  std::string error;
  Reader r(doc, "", &error);
  if (*kind == "hello") {
    out.kind = Record::Kind::hello;
    return out;
  }
  if (*kind == "rules") {
    out.kind = Record::Kind::rules_answer;
    r.string("id", out.rules_answer.id, true);
    r.boolean("ok", out.rules_answer.ok);
    const auto* errors = r.array("errors", kMaxRulesPerRecord);
    if (!r.ok()) return Error{error};
    for (rapidjson::SizeType i = 0; i < errors->Size(); ++i) {
      const auto& e = (*errors)[i];
      if (!e.IsObject()) return Error{indexed("errors", i) + " must be an object"};
      mapping::RuleError item;
      Reader er(e, indexed("errors", i), &error);
      er.string("path", item.path);
      er.string("message", item.message, true);
      if (!er.ok()) return Error{error};
      out.rules_answer.errors.push_back(std::move(item));
    }
    return out;
  }
  if (*kind == "devices" || *kind == "senders") {
    out.kind = Record::Kind::announce;
    out.senders = *kind == "senders";
    const auto* announce = r.array("announce", kMaxDevicesPerRecord);
    if (!r.ok()) return Error{error};
    if (!read_devices(*announce, "announce", &error, out.announce)) return Error{error};
    return out;
  }
  if (*kind == "counters") {
    out.kind = Record::Kind::counters;
    auto& c = out.counters;
    for (auto [key, field] : {std::pair{"received", &c.received}, std::pair{"relayed", &c.relayed},
                              std::pair{"dropped", &c.dropped}, std::pair{"held", &c.held}}) {
      auto it = doc.FindMember(key);
      if (it != doc.MemberEnd()) {
        if (!it->value.IsUint64()) return Error{std::string(key) + " must be a count"};
        *field = it->value.GetUint64();
      }
    }
    const auto* rules = r.array("rules", kMaxRulesPerRecord);
    if (!r.ok()) return Error{error};
    for (rapidjson::SizeType i = 0; i < rules->Size(); ++i) {
      const auto& e = (*rules)[i];
      if (!e.IsArray() || e.Size() != 3 || !e[0].IsString() || !e[1].IsUint64() ||
          !e[2].IsUint64()) {
        return Error{indexed("rules", i) + " must be [name, relayed, dropped]"};
      }
      c.rules.push_back({std::string(e[0].GetString(), e[0].GetStringLength()), e[1].GetUint64(),
                         e[2].GetUint64()});
    }
    return out;
  }
  return Error{"unknown plugin record kind \"" + kind->substr(0, 32) + "\""};
}

}  // namespace rtm::broker_bridge
