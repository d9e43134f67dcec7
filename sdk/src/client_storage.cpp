// Storage (user and channel metadata), presence states and locks (issue 15): the requests
// of docs/protocol.md ("Metadata", "Presence states", "Locks"), their events, and what a
// restore renews (metadata subscriptions, this user's presence states).
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>

#include "client_impl.hpp"
#include "json.hpp"

namespace rtm::sdk::detail {

using namespace std::chrono_literals;
using Lock = std::unique_lock<std::mutex>;

namespace {

// [{"key":..,"value":..,"revision":..}]: no value for a remove, no revision when -1.
std::string items_json(const std::vector<MetadataItem>& items, bool with_value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  auto string = [&w](const std::string& s) {
    w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
  };
  w.StartArray();
  for (const auto& item : items) {
    w.StartObject();
    w.Key("key");
    string(item.key);
    if (with_value) {
      w.Key("value");
      string(item.value);
    }
    if (item.revision != -1) {
      w.Key("revision");
      w.Int64(item.revision);
    }
    w.EndObject();
  }
  w.EndArray();
  return std::string(buffer.GetString(), buffer.GetSize());
}

Metadata parse_metadata(const rapidjson::Value& v) {
  Metadata m;
  m.major_revision = json::int64(v, "major_revision");
  auto it = v.FindMember("items");
  if (it == v.MemberEnd() || !it->value.IsArray()) return m;
  for (const auto& i : it->value.GetArray()) {
    MetadataItem item;
    item.key = json::str(i, "key");
    item.value = json::str(i, "value");
    item.revision = json::int64(i, "revision");
    if (i.IsObject() && i.HasMember("author")) item.author = json::str(i, "author");
    if (i.IsObject() && i.HasMember("updated_at")) item.updated_at = json::int64(i, "updated_at");
    m.items.push_back(std::move(item));
  }
  return m;
}

// {"k":"v",...}; other value types are skipped.
StateMap string_map(const rapidjson::Value& v) {
  StateMap out;
  if (!v.IsObject()) return out;
  for (const auto& m : v.GetObject()) {
    if (m.value.IsString()) {
      out.emplace(std::string(m.name.GetString(), m.name.GetStringLength()),
                  std::string(m.value.GetString(), m.value.GetStringLength()));
    }
  }
  return out;
}

StateMap parse_state_map(const rapidjson::Value& v, const char* key) {
  if (!v.IsObject()) return {};
  auto it = v.FindMember(key);
  return it == v.MemberEnd() ? StateMap{} : string_map(it->value);
}

std::optional<StorageEventType> storage_event_type(const std::string& kind) {
  if (kind == "snapshot") return StorageEventType::snapshot;
  if (kind == "set") return StorageEventType::set;
  if (kind == "update") return StorageEventType::update;
  if (kind == "remove") return StorageEventType::remove;
  return std::nullopt;
}

// A personal `metadata` event (uid: whose, by: the writer) or a channel's `metadata_changed`
// (uid: the writer); nullopt for a kind this SDK does not know.
std::optional<StorageEvent> parse_storage_event(const rapidjson::Value& doc, StorageScope scope) {
  auto type = storage_event_type(json::str(doc, "kind"));
  if (!type) return std::nullopt;
  StorageEvent ev;
  ev.scope = scope;
  ev.type = *type;
  if (scope == StorageScope::user) {
    ev.uid = json::str(doc, "uid");
    ev.by = json::str(doc, "by");
  } else {
    ev.channel = json::str(doc, "channel");
    ev.by = json::str(doc, "uid");
  }
  ev.metadata = parse_metadata(doc);
  ev.ts = json::int64(doc, "ts");
  return ev;
}

std::optional<LockEventType> lock_event_type(const std::string& kind) {
  if (kind == "set") return LockEventType::set;
  if (kind == "removed") return LockEventType::removed;
  if (kind == "acquired") return LockEventType::acquired;
  if (kind == "released") return LockEventType::released;
  if (kind == "expired") return LockEventType::expired;
  return std::nullopt;
}

}  // namespace

// ====================================================================== metadata

void ClientImpl::write_metadata(StorageScope scope, const std::string& target_in,
                                MetadataWrite kind, const std::vector<MetadataItem>& items,
                                const MetadataOptions& options, Callback<Metadata> done) {
  const bool user = scope == StorageScope::user;
  const std::string target = user && target_in.empty() ? config_.uid : target_in;
  if (auto e = name_problem(user ? "uid" : "channel", target)) {
    return done(Status(ErrorCode::invalid_name, *e));
  }
  if (user && !options.lock.empty()) {
    return done(
        Status(ErrorCode::invalid_parameter, "MetadataOptions::lock guards channel metadata only"));
  }
  const char* verb = kind == MetadataWrite::set      ? "set"
                     : kind == MetadataWrite::update ? "update"
                                                     : "remove";
  const std::string op = std::string(verb) + (user ? "_user_metadata" : "_channel_metadata");
  json::Object body;
  body.str(user ? "uid" : "channel", target);
  if (!items.empty()) {
    body.raw("items", items_json(items, kind != MetadataWrite::remove), rapidjson::kArrayType);
  }
  if (options.major_revision != -1) body.int64("major_revision", options.major_revision);
  if (kind != MetadataWrite::remove) {
    if (options.record_author) body.boolean("record_author", true);
    if (options.record_ts) body.boolean("record_ts", true);
  }
  if (!options.lock.empty()) body.str("lock", options.lock);
  send_request(op, body.text(), op + " " + target, [done](Reply r) {
    if (!r.status.ok()) return done(r.status);
    done(parse_metadata(r.result()));
  });
}

void ClientImpl::get_metadata(StorageScope scope, const std::string& target_in,
                              const std::vector<std::string>& keys, Callback<Metadata> done) {
  const bool user = scope == StorageScope::user;
  const std::string target = user && target_in.empty() ? config_.uid : target_in;
  if (auto e = name_problem(user ? "uid" : "channel", target)) {
    return done(Status(ErrorCode::invalid_name, *e));
  }
  const std::string op = user ? "get_user_metadata" : "get_channel_metadata";
  json::Object body;
  body.str(user ? "uid" : "channel", target);
  if (!keys.empty()) body.list("keys", keys);
  send_request(op, body.text(), op + " " + target, [done](Reply r) {
    if (!r.status.ok()) return done(r.status);
    done(parse_metadata(r.result()));
  });
}

void ClientImpl::subscribe_metadata(const std::string& uid_in, bool unsubscribe,
                                    Callback<void> done) {
  const std::string uid = uid_in.empty() ? config_.uid : uid_in;
  if (auto e = name_problem("uid", uid)) return done(Status(ErrorCode::invalid_name, *e));
  const std::string op = unsubscribe ? "unsubscribe_user_metadata" : "subscribe_user_metadata";
  send_request(op, json::Object().str("uid", uid).text(), op + " " + uid,
               [this, uid, unsubscribe, done](Reply r) {
                 if (!r.status.ok()) return done(r.status);
                 {
                   Lock lock(mutex_);
                   if (unsubscribe) {
                     metadata_subscriptions_.erase(uid);
                   } else {
                     metadata_subscriptions_.insert(uid);
                   }
                 }
                 done(Result<void>());
               });
}

void ClientImpl::on_metadata_event(const rapidjson::Document& doc) {
  if (auto ev = parse_storage_event(doc, StorageScope::user)) {
    emit(handler_of<StorageEvent>(), std::move(*ev));
  } else {
    log(LogLevel::debug, "rtm sdk: unknown metadata event kind " + json::str(doc, "kind"));
  }
}

// ====================================================================== presence states

void ClientImpl::set_state(const std::string& channel, const StateMap& states,
                           Callback<StateMap> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  send_request("set_state", json::Object().str("channel", channel).map("states", states).text(),
               "set_state " + channel, own_states_reply(channel, std::move(done)));
}

// The answer of set_state / remove_state: this user's states after the call, also kept for
// a restore.
ReplyFn ClientImpl::own_states_reply(const std::string& channel, Callback<StateMap> done) {
  return [this, channel, done](Reply r) {
    if (!r.status.ok()) return done(r.status);
    auto now = parse_state_map(r.result(), "states");
    {
      Lock lock(mutex_);
      auto ch = channels_.find(channel);
      if (ch != channels_.end()) ch->second.states = now;
    }
    done(std::move(now));
  };
}

void ClientImpl::remove_state(const std::string& channel, const std::vector<std::string>& keys,
                              Callback<StateMap> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  json::Object body;
  body.str("channel", channel);
  if (!keys.empty()) body.list("keys", keys);
  send_request("remove_state", body.text(), "remove_state " + channel,
               own_states_reply(channel, std::move(done)));
}

void ClientImpl::get_state(const std::string& channel, const std::string& uid_in,
                           Callback<UserState> done) {
  const std::string uid = uid_in.empty() ? config_.uid : uid_in;
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  if (auto e = name_problem("uid", uid)) return done(Status(ErrorCode::invalid_name, *e));
  send_request(
      "get_state", json::Object().str("channel", channel).str("uid", uid).text(),
      "get_state " + channel + " " + uid, [channel, uid, done](Reply r) {
        if (!r.status.ok()) return done(r.status);
        done(UserState{json::str(r.result(), "channel", channel), json::str(r.result(), "uid", uid),
                       parse_state_map(r.result(), "states")});
      });
}

void ClientImpl::who_now_states(const std::string& channel, bool include_state,
                                Callback<WhoNowResult> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  json::Object body;
  body.str("channel", channel);
  if (include_state) body.boolean("include_state", true);
  send_request("who_now", body.text(), "who_now " + channel, [channel, done](Reply r) {
    if (!r.status.ok()) return done(r.status);
    WhoNowResult out;
    out.channel = json::str(r.result(), "channel", channel);
    out.members = json::strings(r.result(), "members");
    auto states = r.result().FindMember("states");
    if (states != r.result().MemberEnd() && states->value.IsObject()) {
      for (const auto& m : states->value.GetObject()) {
        out.states.emplace(std::string(m.name.GetString(), m.name.GetStringLength()),
                           string_map(m.value));
      }
    }
    done(std::move(out));
  });
}

// ====================================================================== locks

void ClientImpl::lock_op(const char* op, const std::string& channel, const std::string& name,
                         const std::string& uid, std::int64_t ttl_s, Callback<void> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  if (name.empty()) return done(Status(ErrorCode::missing_parameter, "a lock needs a name"));
  json::Object body;
  body.str("channel", channel).str("lock", name);
  if (!uid.empty()) body.str("uid", uid);
  if (ttl_s > 0) body.int64("ttl", ttl_s);
  send_request(op, body.text(), std::string(op) + " " + channel + "/" + name,
               [done](Reply r) { done(r.status.ok() ? Result<void>() : Result<void>(r.status)); });
}

// With retry, the call waits past the gateway's answer ("queued") for the `lock` channel
// event that makes this user the holder. The wait is a pending entry of its own (an id that
// never goes on the wire), so that the timer ends it at its deadline and a lost connection
// fails it like any request; the answer or the event completes it, whichever decides first.
void ClientImpl::acquire_lock(const std::string& channel, const std::string& name,
                              const AcquireLockOptions& options, Callback<AcquireStatus> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  if (name.empty()) return done(Status(ErrorCode::missing_parameter, "a lock needs a name"));
  const std::string what = "acquire_lock " + channel + "/" + name;
  auto decided = [done](const Reply& r) {
    if (!r.status.ok()) return done(r.status);
    done(json::str(r.result(), "status") == "already_held" ? AcquireStatus::already_held
                                                           : AcquireStatus::acquired);
  };
  std::string wait_id;
  if (options.retry) {
    wait_id = next_msg_id() + "-lock-wait";
    const auto key = std::make_pair(channel, name);
    const auto timeout = options.wait > 0ms ? options.wait : config_.request_timeout;
    ReplyFn finish = [this, key, wait_id, decided](Reply r) {
      {
        Lock lock(mutex_);
        auto it = lock_waits_.find(key);
        if (it != lock_waits_.end()) {
          auto& ids = it->second;
          ids.erase(std::remove(ids.begin(), ids.end(), wait_id), ids.end());
          if (ids.empty()) lock_waits_.erase(it);
        }
      }
      // Given up: leave the queue (or let go of a lock that came too late).
      if (r.status.is(ErrorCode::timeout))
        lock_op("release_lock", key.first, key.second, "", 0, [](Result<void>) {});
      decided(r);
    };
    {
      Lock lock(mutex_);
      pending_.emplace(wait_id, Pending{what + " (waiting in the queue)", std::move(finish),
                                        Clock::now() + timeout, timeout});
      lock_waits_[key].push_back(wait_id);
    }
    timer_cv_.notify_one();
  }
  send_request("acquire_lock",
               json::Object()
                   .str("channel", channel)
                   .str("lock", name)
                   .boolean("retry", options.retry)
                   .text(),
               what, [this, wait_id, decided](Reply r) {
                 if (wait_id.empty()) return decided(r);
                 const auto status = json::str(r.result(), "status");
                 if (!r.status.ok() || status == "acquired" || status == "already_held") {
                   return complete(wait_id, std::move(r));
                 }
                 // queued / already_queued: the `lock` event (acquired, or removed) decides.
               });
}

void ClientImpl::finish_lock_waits(const std::string& channel, const std::string& name,
                                   const Reply& reply) {
  std::vector<std::string> ids;
  {
    Lock lock(mutex_);
    auto it = lock_waits_.find({channel, name});
    if (it != lock_waits_.end()) ids = it->second;
  }
  for (const auto& id : ids) complete(id, reply);
}

void ClientImpl::get_locks(const std::string& channel, Callback<std::vector<LockInfo>> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  send_request(
      "get_locks", json::Object().str("channel", channel).text(), "get_locks " + channel,
      [done](Reply r) {
        if (!r.status.ok()) return done(r.status);
        std::vector<LockInfo> out;
        auto locks = r.result().FindMember("locks");
        if (locks != r.result().MemberEnd() && locks->value.IsArray()) {
          for (const auto& l : locks->value.GetArray()) {
            out.push_back({json::str(l, "lock"), json::int64(l, "ttl"), json::str(l, "owner"),
                           json::strings(l, "waiters"), json::int64(l, "expires_at")});
          }
        }
        done(std::move(out));
      });
}

// ====================================================================== channel events

bool ClientImpl::on_storage_channel_event(const std::string& name, const rapidjson::Document& doc) {
  if (name == "metadata_changed") {
    if (auto ev = parse_storage_event(doc, StorageScope::channel)) {
      emit(handler_of<StorageEvent>(), std::move(*ev));
    }
    return true;
  }
  if (name == "state_changed") {
    PresenceStateEvent ev;
    ev.channel = json::str(doc, "channel");
    ev.uid = json::str(doc, "uid");
    ev.states = parse_state_map(doc, "states");
    ev.written = json::strings(doc, "written");
    ev.removed = json::strings(doc, "removed");
    ev.ts = json::int64(doc, "ts");
    if (ev.uid == config_.uid) {  // also what another client of this uid set
      Lock lock(mutex_);
      auto ch = channels_.find(ev.channel);
      if (ch != channels_.end()) ch->second.states = ev.states;
    }
    emit(handler_of<PresenceStateEvent>(), std::move(ev));
    return true;
  }
  if (name == "lock") {
    auto type = lock_event_type(json::str(doc, "kind"));
    if (!type) return true;
    LockEvent ev;
    ev.type = *type;
    ev.channel = json::str(doc, "channel");
    ev.lock = json::str(doc, "lock");
    ev.uid = json::str(doc, "uid");
    ev.ttl = json::int64(doc, "ttl");
    ev.ts = json::int64(doc, "ts");
    const auto channel = ev.channel, lock = ev.lock;
    const bool mine = ev.type == LockEventType::acquired && ev.uid == config_.uid;
    const bool gone = ev.type == LockEventType::removed;
    emit(handler_of<LockEvent>(), std::move(ev));
    if (mine) finish_lock_waits(channel, lock, Reply{});
    if (gone) {
      finish_lock_waits(
          channel, lock,
          Reply{Status(ErrorCode::lock_not_found, "lock " + lock + " of channel " + channel +
                                                      " was removed while waiting for it"),
                nullptr});
    }
    return true;
  }
  return false;
}

// ====================================================================== restore

bool ClientImpl::restore_storage(std::vector<std::string>& problems, std::size_t& n_metadata) {
  std::map<std::string, StateMap> states;
  std::set<std::string> subscriptions;
  {
    Lock lock(mutex_);
    for (const auto& [name, ch] : channels_) {
      if (!ch.states.empty()) states.emplace(name, ch.states);
    }
    subscriptions = metadata_subscriptions_;
  }
  // The gateway drops a member's states with its session: set them again (a no-op, and no
  // event, when the session was kept).
  for (const auto& [channel, s] : states) {
    auto r = call_sync("set_state", json::Object().str("channel", channel).map("states", s).text(),
                       "set_state " + channel + " (restore)", config_.request_timeout);
    if (transport_failure(r.status)) return false;
    if (!r.status.ok()) {
      problems.push_back("set_state " + channel + ": " + r.status.to_string());
      Lock lock(mutex_);
      auto ch = channels_.find(channel);
      if (ch != channels_.end()) ch->second.states.clear();
    }
  }
  // Metadata subscriptions end with the session; each renewal sends a snapshot event.
  for (const auto& uid : subscriptions) {
    auto r = call_sync("subscribe_user_metadata", json::Object().str("uid", uid).text(),
                       "subscribe_user_metadata " + uid + " (restore)", config_.request_timeout);
    if (transport_failure(r.status)) return false;
    if (!r.status.ok()) {
      problems.push_back("subscribe_user_metadata " + uid + ": " + r.status.to_string());
      Lock lock(mutex_);
      metadata_subscriptions_.erase(uid);
    } else {
      ++n_metadata;
    }
  }
  return true;
}

}  // namespace rtm::sdk::detail
