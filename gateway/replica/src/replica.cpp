#include "rtm/gateway/replica.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string_view>
#include <utility>

#include "rtm/storage/records.hpp"
#include "rtm/topics/names.hpp"
#include "rtm/util/base64.hpp"

namespace rtm::gateway::replica {
namespace {

// Values carry {"v":kVersion,...}; a gateway refuses versions above its own, so that a
// newer gateway's rows are skipped (and said) rather than misread.
constexpr std::int64_t kVersion = 1;
// Sequences and ids stay in int64 (sqlite keeps them so) and cannot overflow a counter.
constexpr std::uint64_t kMaxNumber =
    static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;
using JsonValue = rapidjson::Value;

// ---------------------------------------------------------------- writing

void key(Writer& w, std::string_view k) {
  w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
}

void raw_string(Writer& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

// JSON holds text: bytes that are not UTF-8 (binary payloads) go base64 under "{k}_b64".
void put_string(Writer& w, std::string_view k, std::string_view s) {
  if (topics::is_valid_utf8(s)) {
    key(w, k);
    raw_string(w, s);
  } else {
    key(w, std::string(k) + "_b64");
    raw_string(w, util::base64_encode(s));
  }
}

void put_strings(Writer& w, std::string_view k, const std::vector<std::string>& list) {
  const bool text = std::all_of(list.begin(), list.end(),
                                [](const std::string& s) { return topics::is_valid_utf8(s); });
  key(w, text ? std::string(k) : std::string(k) + "_b64");
  w.StartArray();
  for (const auto& s : list) raw_string(w, text ? s : util::base64_encode(s));
  w.EndArray();
}

void put_int(Writer& w, std::string_view k, std::int64_t v) {
  key(w, k);
  w.Int64(v);
}

void put_uint(Writer& w, std::string_view k, std::uint64_t v) {
  key(w, k);
  w.Uint64(v);
}

void put_bool(Writer& w, std::string_view k, bool v) {
  key(w, k);
  w.Bool(v);
}

template <class Body>
std::string encode(Body body) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  put_int(w, "v", kVersion);
  body(w);
  w.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string encode_session(const StoredSession& s) {
  return encode([&](Writer& w) {
    put_string(w, "session_id", s.info.session_id);
    put_int(w, "started_ms", s.info.started_ms);
    put_int(w, "expires_at_ms", s.info.expires_at_ms);
    put_strings(w, "watching", s.watching);
    key(w, "message_channels");
    w.StartArray();
    for (const auto& sub : s.message_channels) {
      w.StartObject();
      put_string(w, "channel", sub.channel);
      put_bool(w, "presence", sub.presence);
      put_int(w, "token_expires_at_ms", sub.token_expires_at_ms);
      w.EndObject();
    }
    w.EndArray();
  });
}

std::string encode_member(const StoredMember& m) {
  return encode([&](Writer& w) {
    put_uint(w, "seq", m.seq);
    put_int(w, "token_expires_at_ms", m.token_expires_at_ms);
    put_strings(w, "publishing", m.publishing);
    key(w, "subscriptions");
    w.StartArray();
    for (const auto& sub : m.subscriptions) {
      w.StartObject();
      put_string(w, "topic", sub.topic);
      put_bool(w, "all", sub.all);
      put_strings(w, "publishers", sub.publishers);
      put_strings(w, "automatic", sub.automatic);
      w.EndObject();
    }
    w.EndArray();
  });
}

std::string encode_presence(const PresenceRecord& p) {
  return encode([&](Writer& w) {
    put_bool(w, "connected", p.connected);
    put_string(w, "connection", p.connection);
  });
}

// Metadata and locks keep the storage model's own versioned records inside.
std::string encode_metadata_row(const storage::Metadata& m) {
  return encode([&](Writer& w) { put_string(w, "record", storage::encode_metadata(m)); });
}

std::string encode_locks_row(const std::vector<storage::LockState>& locks) {
  return encode([&](Writer& w) { put_string(w, "record", storage::encode_locks(locks)); });
}

std::string encode_targets(const std::vector<std::string>& targets) {
  return encode([&](Writer& w) { put_strings(w, "targets", targets); });
}

std::string encode_message(const PeerMessage& m) {
  return encode([&](Writer& w) {
    put_string(w, "from", m.from);
    put_string(w, "to", m.to);
    put_int(w, "ts_ms", m.ts_ms);
    put_bool(w, "binary", m.binary);
    put_bool(w, "receipt", m.receipt);
    put_string(w, "payload", m.payload);
  });
}

std::string encode_last_id(std::uint64_t last_id) {
  return encode([&](Writer& w) { put_uint(w, "last_id", last_id); });
}

std::string encode_invitation(const invitations::Invitation& inv) {
  return encode([&](Writer& w) {
    put_string(w, "caller", inv.caller);
    put_string(w, "callee", inv.callee);
    put_string(w, "content", inv.content);
    put_string(w, "channel_id", inv.channel_id);
    put_int(w, "phase", inv.phase == invitations::Phase::received ? 1 : 0);
    put_int(w, "created_ms", inv.created_ms);
    put_int(w, "deadline_ms", inv.deadline_ms);
  });
}

// Presence states: [{"key":..,"value":..}] (values may be any bytes: base64 when not UTF-8).
std::string encode_states(const storage::StateItems& states) {
  return encode([&](Writer& w) {
    key(w, "states");
    w.StartArray();
    for (const auto& [k, v] : states) {
      w.StartObject();
      put_string(w, "key", k);
      put_string(w, "value", v);
      w.EndObject();
    }
    w.EndArray();
  });
}

// ---------------------------------------------------------------- fields

std::string session_field(const std::string& uid) {
  return "s:" + uid;
}
std::string member_field(const std::string& channel, const std::string& uid) {
  return "m:" + channel + "/" + uid;
}
std::string presence_field(const std::string& uid) {
  return "p:" + uid;
}
std::string metadata_field(MetadataScope scope, const std::string& name) {
  return std::string("d:") + (scope == MetadataScope::user ? "u/" : "c/") + name;
}
std::string subscriptions_field(const std::string& uid) {
  return "w:" + uid;
}
std::string locks_field(const std::string& channel) {
  return "l:" + channel;
}
std::string inbox_field(std::uint64_t id) {
  return "i:" + std::to_string(id);
}
constexpr const char* kLastInboxIdField = "n:";
std::string invitation_field(std::uint64_t id) {
  return "v:" + std::to_string(id);
}
std::string states_field(const std::string& channel, const std::string& uid) {
  return "t:" + channel + "/" + uid;
}

// ---------------------------------------------------------------- reading

// Reads the members of one JSON object; the first problem stays in `error`.
class ObjectReader {
 public:
  ObjectReader(const JsonValue& object, std::string& error) : object_(object), error_(error) {}

  bool ok() const { return error_.empty(); }

  std::string string(const char* k) {
    if (!ok()) return {};
    if (const auto* v = member(k); v && v->IsString())
      return {v->GetString(), v->GetStringLength()};
    const std::string encoded = std::string(k) + "_b64";
    if (const auto* v = member(encoded.c_str()); v && v->IsString()) {
      if (auto bytes = util::base64_decode({v->GetString(), v->GetStringLength()})) return *bytes;
      return fail(encoded + " is not base64"), std::string();
    }
    return fail(std::string(k) + " is missing or not a string"), std::string();
  }

  std::vector<std::string> strings(const char* k) {
    std::vector<std::string> out;
    if (!ok()) return out;
    bool encoded = false;
    const auto* v = member(k);
    const std::string encoded_key = std::string(k) + "_b64";
    if (!v) {
      v = member(encoded_key.c_str());
      encoded = true;
    }
    if (!v || !v->IsArray()) return fail(std::string(k) + " is missing or not a list"), out;
    for (const auto& item : v->GetArray()) {
      if (!item.IsString()) return fail(std::string(k) + " holds a non-string"), out;
      std::string_view text(item.GetString(), item.GetStringLength());
      if (!encoded) {
        out.emplace_back(text);
      } else if (auto bytes = util::base64_decode(text)) {
        out.push_back(std::move(*bytes));
      } else {
        return fail(encoded_key + " holds a value that is not base64"), out;
      }
    }
    return out;
  }

  std::int64_t int64(const char* k) {
    if (!ok()) return 0;
    const auto* v = member(k);
    if (!v || !v->IsInt64()) return fail(std::string(k) + " is missing or not an int64"), 0;
    return v->GetInt64();
  }

  // Sequences and ids: 0 to kMaxNumber.
  std::uint64_t number(const char* k) {
    if (!ok()) return 0;
    const auto* v = member(k);
    if (!v || !v->IsUint64() || v->GetUint64() > kMaxNumber) {
      return fail(std::string(k) + " is missing or not a number up to 2^63-1"), 0;
    }
    return v->GetUint64();
  }

  bool boolean(const char* k) {
    if (!ok()) return false;
    const auto* v = member(k);
    if (!v || !v->IsBool()) return fail(std::string(k) + " is missing or not a boolean"), false;
    return v->GetBool();
  }

  // The objects of a list, each read by `each`.
  template <class Each>
  void objects(const char* k, Each each) {
    if (!ok()) return;
    const auto* v = member(k);
    if (!v || !v->IsArray()) return fail(std::string(k) + " is missing or not a list");
    for (const auto& item : v->GetArray()) {
      if (!item.IsObject()) return fail(std::string(k) + " holds a non-object");
      ObjectReader inner(item, error_);
      each(inner);
      if (!ok()) return;
    }
  }

  void fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
  }

 private:
  const JsonValue* member(const char* k) const {
    auto it = object_.FindMember(k);
    return it == object_.MemberEnd() ? nullptr : &it->value;
  }

  const JsonValue& object_;
  std::string& error_;
};

// Parses a value and checks its version; `read` then takes the members.
template <class Read>
std::string decode(const std::string& value, Read read) {
  rapidjson::Document d;
  d.Parse<rapidjson::kParseValidateEncodingFlag>(value.data(), value.size());
  if (d.HasParseError() || !d.IsObject()) return "the value is not a JSON object";
  auto v = d.FindMember("v");
  if (v == d.MemberEnd() || !v->value.IsInt64() || v->value.GetInt64() < 1) {
    return "the value has no version";
  }
  if (v->value.GetInt64() > kVersion) {
    return "the value is of version " + std::to_string(v->value.GetInt64()) +
           ", written by a newer gateway (this one reads up to " + std::to_string(kVersion) + ")";
  }
  std::string error;
  ObjectReader reader(d, error);
  read(reader);
  return error;
}

// A row decoded: its kind, its key, and its value (when it is not a deletion).
struct Decoded {
  char kind = 0;
  std::string name;  // uid, channel, metadata name
  std::string uid;   // of a member
  MetadataScope scope = MetadataScope::user;
  std::uint64_t id = 0;
  bool deleted = false;
  StoredSession session;
  StoredMember member;
  PresenceRecord presence;
  storage::Metadata metadata;
  std::vector<std::string> targets;
  std::vector<storage::LockState> locks;
  PeerMessage message;
  std::uint64_t last_id = 0;
  invitations::Invitation invitation;
  storage::StateItems states;
};

// The decimal id of "i:" and "v:" fields, in its one spelling.
bool parse_id(std::string_view text, std::uint64_t& id) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  return ec == std::errc() && end == text.data() + text.size() && id <= kMaxNumber;
}

std::string decode_field(const std::string& field, Decoded& out) {
  if (field.size() < 2 || field[1] != ':') return "the field has no kind";
  out.kind = field[0];
  const std::string_view rest = std::string_view(field).substr(2);
  auto split = [&](std::string& first, std::string& second) {
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) return false;
    first = std::string(rest.substr(0, slash));
    second = std::string(rest.substr(slash + 1));
    return !first.empty() && !second.empty();
  };
  switch (out.kind) {
    case 's':
    case 'p':
    case 'w':
    case 'l':
      out.name = std::string(rest);
      return out.name.empty() ? "the field names nothing" : "";
    case 'm':
      return split(out.name, out.uid) ? "" : "the field is not m:{channel}/{uid}";
    case 't':
      return split(out.name, out.uid) ? "" : "the field is not t:{channel}/{uid}";
    case 'd': {
      std::string scope;
      if (!split(scope, out.name) || (scope != "u" && scope != "c")) {
        return "the field is not d:{u|c}/{name}";
      }
      out.scope = scope == "u" ? MetadataScope::user : MetadataScope::channel;
      return "";
    }
    case 'i':
    case 'v':
      return parse_id(rest, out.id) ? "" : "the field's id is not a number up to 2^63-1";
    case 'n':
      return rest.empty() ? "" : "the field is not n:";
    default:
      return "the kind of the field is unknown";
  }
}

std::string decode_value(const std::string& value, Decoded& out) {
  switch (out.kind) {
    case 's':
      return decode(value, [&](ObjectReader& r) {
        auto& s = out.session;
        s.uid = out.name;
        s.info.session_id = r.string("session_id");
        s.info.started_ms = r.int64("started_ms");
        s.info.expires_at_ms = r.int64("expires_at_ms");
        s.watching = r.strings("watching");
        r.objects("message_channels", [&](ObjectReader& sub) {
          MessageChannelSubscription m;
          m.channel = sub.string("channel");
          m.presence = sub.boolean("presence");
          m.token_expires_at_ms = sub.int64("token_expires_at_ms");
          s.message_channels.push_back(std::move(m));
        });
      });
    case 'm':
      return decode(value, [&](ObjectReader& r) {
        auto& m = out.member;
        m.seq = r.number("seq");
        m.token_expires_at_ms = r.int64("token_expires_at_ms");
        m.publishing = r.strings("publishing");
        r.objects("subscriptions", [&](ObjectReader& sub) {
          StoredSubscription s;
          s.topic = sub.string("topic");
          s.all = sub.boolean("all");
          s.publishers = sub.strings("publishers");
          s.automatic = sub.strings("automatic");
          m.subscriptions.push_back(std::move(s));
        });
        if (r.ok() && m.seq == 0) r.fail("seq is 0");
      });
    case 'p':
      return decode(value, [&](ObjectReader& r) {
        out.presence.connected = r.boolean("connected");
        out.presence.connection = r.string("connection");
      });
    case 'd':
      return decode(value, [&](ObjectReader& r) {
        const auto record = r.string("record");
        if (!r.ok()) return;
        auto decoded = storage::decode_metadata(record);
        if (!decoded) return r.fail("the metadata record: " + decoded.error().message);
        out.metadata = std::move(decoded).value();
      });
    case 'w':
      return decode(value, [&](ObjectReader& r) { out.targets = r.strings("targets"); });
    case 'l':
      return decode(value, [&](ObjectReader& r) {
        const auto record = r.string("record");
        if (!r.ok()) return;
        auto decoded = storage::decode_locks(record);
        if (!decoded) return r.fail("the locks record: " + decoded.error().message);
        out.locks = std::move(decoded).value();
      });
    case 'i':
      return decode(value, [&](ObjectReader& r) {
        auto& m = out.message;
        m.id = out.id;
        m.from = r.string("from");
        m.to = r.string("to");
        m.ts_ms = r.int64("ts_ms");
        m.binary = r.boolean("binary");
        m.receipt = r.boolean("receipt");
        m.payload = r.string("payload");
      });
    case 'n':
      return decode(value, [&](ObjectReader& r) { out.last_id = r.number("last_id"); });
    case 't':
      return decode(value, [&](ObjectReader& r) {
        r.objects("states", [&](ObjectReader& item) {
          auto k = item.string("key");
          out.states[std::move(k)] = item.string("value");
        });
      });
    case 'v':
      return decode(value, [&](ObjectReader& r) {
        auto& inv = out.invitation;
        inv.id = out.id;
        inv.caller = r.string("caller");
        inv.callee = r.string("callee");
        inv.content = r.string("content");
        inv.channel_id = r.string("channel_id");
        const auto phase = r.int64("phase");
        if (r.ok() && phase != 0 && phase != 1) r.fail("phase is not 0 or 1");
        inv.phase = phase == 1 ? invitations::Phase::received : invitations::Phase::sent;
        inv.created_ms = r.int64("created_ms");
        inv.deadline_ms = r.int64("deadline_ms");
      });
    default:
      return "the kind of the field is unknown";
  }
}

// ---------------------------------------------------------------- applying

// Applies one decoded row; a message when it cannot.
std::string apply(MemoryStore& store, const Decoded& row, ChangeSet* applied) {
  ChangeSet ignored;
  ChangeSet& keys = applied ? *applied : ignored;
  switch (row.kind) {
    case 't':
      // Presence states: shared between gateways, never on disk (RTM 2's do not outlive it).
      store.states_model().replace(row.name, row.uid,
                                   row.deleted ? storage::StateItems{} : row.states);
      keys.states.emplace(row.name, row.uid);
      return "";
    case 's':
      if (row.deleted) {
        // What the session takes with it is applied too, for the listeners of `applied`.
        for (const auto& channel : store.channels_of(row.name)) {
          keys.members.emplace(channel, row.name);
        }
        if (!store.metadata().subscriptions_of(row.name).empty()) {
          keys.metadata_subscribers.insert(row.name);
        }
        store.apply_session(row.name, std::nullopt);
      } else {
        store.apply_session(row.name, row.session);
      }
      keys.sessions.insert(row.name);
      return "";
    case 'm':
      if (!store.apply_member(row.name, row.uid,
                              row.deleted ? std::nullopt : std::optional(row.member))) {
        return "the member's session s:" + row.uid + " is missing";
      }
      keys.members.emplace(row.name, row.uid);
      return "";
    case 'p':
      store.apply_presence(row.name, row.deleted ? std::nullopt : std::optional(row.presence));
      keys.presence.insert(row.name);
      return "";
    case 'd':
      if (row.deleted) {
        store.metadata_model().erase(row.scope, row.name);
      } else {
        store.metadata_model().restore(row.scope, row.name, row.metadata);
      }
      keys.metadata.emplace(row.scope, row.name);
      return "";
    case 'w':
      store.metadata_model().replace_subscriptions(
          row.name, row.deleted ? std::vector<std::string>{} : row.targets);
      keys.metadata_subscribers.insert(row.name);
      return "";
    case 'l':
      store.locks_model().restore(row.name,
                                  row.deleted ? std::vector<storage::LockState>{} : row.locks);
      keys.locks.insert(row.name);
      return "";
    case 'i':
      if (row.deleted) {
        store.inbox_model().erase(row.id);
      } else {
        store.inbox_model().replace(row.message);
      }
      store.inbox_model().restore_last_id(row.id);
      keys.inbox.insert(row.id);
      return "";
    case 'n':
      if (!row.deleted) {  // ids only grow
        store.inbox_model().restore_last_id(row.last_id);
        keys.inbox_last_id = store.inbox_model().last_id();
      }
      return "";
    case 'v':
      if (row.deleted) {
        store.invitations_model().forget(row.id);
      } else {
        store.invitations_model().restore(row.invitation);
      }
      // Ids are used once, also those of invitations that ended before this gateway saw them.
      store.invitations_model().restore_last_id(row.id);
      keys.invitations.insert(row.id);
      return "";
    default:
      return "the kind of the field is unknown";
  }
}

}  // namespace

std::vector<Row> read_rows(const MemoryStore& store, const ChangeSet& changes) {
  std::vector<Row> rows;
  rows.reserve(changes.size() + 1);
  for (const auto& uid : changes.sessions) {
    const auto s = store.stored_session(uid);
    rows.push_back({session_field(uid), s ? std::optional(encode_session(*s)) : std::nullopt});
  }
  for (const auto& [channel, uid] : changes.members) {
    const auto m = store.stored_member(channel, uid);
    rows.push_back(
        {member_field(channel, uid), m ? std::optional(encode_member(*m)) : std::nullopt});
  }
  for (const auto& uid : changes.presence) {
    const auto p = store.presence(uid);
    rows.push_back({presence_field(uid), p ? std::optional(encode_presence(*p)) : std::nullopt});
  }
  const auto& metadata = store.metadata_model();
  for (const auto& [scope, name] : changes.metadata) {
    rows.push_back({metadata_field(scope, name),
                    metadata.contains(scope, name)
                        ? std::optional(encode_metadata_row(metadata.read(scope, name)))
                        : std::nullopt});
  }
  for (const auto& uid : changes.metadata_subscribers) {
    const auto targets = metadata.subscriptions_of(uid);
    rows.push_back({subscriptions_field(uid),
                    targets.empty() ? std::nullopt : std::optional(encode_targets(targets))});
  }
  for (const auto& channel : changes.locks) {
    const auto records = store.locks_model().records(channel);
    rows.push_back({locks_field(channel),
                    records.empty() ? std::nullopt : std::optional(encode_locks_row(records))});
  }
  for (const auto id : changes.inbox) {
    const auto m = store.inbox_model().find(id);
    rows.push_back({inbox_field(id), m ? std::optional(encode_message(*m)) : std::nullopt});
  }
  if (changes.inbox_last_id) {
    rows.push_back({kLastInboxIdField, encode_last_id(store.inbox_model().last_id())});
  }
  for (const auto id : changes.invitations) {
    const auto* inv = store.invitations_model().find(id);
    rows.push_back(
        {invitation_field(id), inv ? std::optional(encode_invitation(*inv)) : std::nullopt});
  }
  for (const auto& [channel, uid] : changes.states) {
    const auto states = store.states_model().get(channel, uid);
    rows.push_back({states_field(channel, uid),
                    states.empty() ? std::nullopt : std::optional(encode_states(states))});
  }
  return rows;
}

void for_each_row(const MemoryStore& store, const std::function<void(Row)>& visit) {
  store.for_each_session([&](const StoredSession& s) {
    visit({session_field(s.uid), encode_session(s)});
  });
  store.for_each_member(
      [&](const std::string& channel, const std::string& uid, const StoredMember& m) {
        visit({member_field(channel, uid), encode_member(m)});
      });
  store.for_each_presence([&](const std::string& uid, const PresenceRecord& p) {
    visit({presence_field(uid), encode_presence(p)});
  });
  store.metadata_model().for_each(
      [&](MetadataScope scope, const std::string& name, const storage::Metadata& m) {
        visit({metadata_field(scope, name), encode_metadata_row(m)});
      });
  store.metadata_model().for_each_subscriber(
      [&](const std::string& subscriber, const std::vector<std::string>& targets) {
        visit({subscriptions_field(subscriber), encode_targets(targets)});
      });
  for (const auto& channel : store.locks_model().channels()) {
    visit({locks_field(channel), encode_locks_row(store.locks_model().records(channel))});
  }
  store.inbox_model().for_each([&](const PeerMessage& m) {
    visit({inbox_field(m.id), encode_message(m)});
  });
  if (store.inbox_model().last_id() > 0) {
    visit({kLastInboxIdField, encode_last_id(store.inbox_model().last_id())});
  }
  store.invitations_model().for_each([&](const invitations::Invitation& inv) {
    visit({invitation_field(inv.id), encode_invitation(inv)});
  });
  store.states_model().for_each(
      [&](const std::string& channel, const std::string& uid, const storage::StateItems& states) {
        visit({states_field(channel, uid), encode_states(states)});
      });
}

std::vector<std::string> apply_rows(MemoryStore& store, const std::vector<Row>& rows,
                                    ChangeSet* applied) {
  std::vector<std::string> errors;
  std::vector<Decoded> decoded;
  decoded.reserve(rows.size());
  for (const auto& row : rows) {
    Decoded d;
    std::string error = decode_field(row.field, d);
    if (error.empty()) {
      d.deleted = !row.value;
      if (row.value) error = decode_value(*row.value, d);
    }
    if (!error.empty()) {
      errors.push_back(row.field + ": " + error + "; skipped");
      continue;
    }
    decoded.push_back(std::move(d));
  }
  // Member deletions, session deletions, session puts, member puts by seq, then the rest:
  // a member needs its session, and a channel's join order follows the seqs.
  auto rank = [](const Decoded& d) {
    if (d.kind == 'm') return d.deleted ? 0 : 3;
    if (d.kind == 's') return d.deleted ? 1 : 2;
    return 4;
  };
  std::stable_sort(decoded.begin(), decoded.end(), [&](const Decoded& a, const Decoded& b) {
    const int ra = rank(a);
    const int rb = rank(b);
    if (ra != rb) return ra < rb;
    return ra == 3 && a.member.seq < b.member.seq;
  });
  for (const auto& d : decoded) {
    std::string error = apply(store, d, applied);
    if (!error.empty()) {
      std::string field(1, d.kind);
      field += ":" + d.name + (d.kind == 'm' || d.kind == 't' ? "/" + d.uid : "");
      errors.push_back(field + ": " + error + "; skipped");
    }
  }
  return errors;
}

void clear(MemoryStore& store) {
  store.clear_model();
}

}  // namespace rtm::gateway::replica
