#include "rtm/grants/table.hpp"

namespace rtm::grants {
namespace {

bool starts_with(std::string_view text, std::string_view head) {
  return text.size() >= head.size() && text.compare(0, head.size(), head) == 0;
}

// Splits "a/b/c" into exactly `n` non-empty levels; false otherwise.
template <std::size_t N>
bool levels(std::string_view text, std::string_view (&out)[N]) {
  std::size_t start = 0;
  for (std::size_t i = 0; i < N; ++i) {
    const auto end = text.find('/', start);
    const bool last = i + 1 == N;
    if (last != (end == std::string_view::npos)) return false;
    const auto stop = last ? text.size() : end;
    if (stop == start) return false;
    out[i] = text.substr(start, stop - start);
    start = stop + 1;
  }
  return true;
}

constexpr std::string_view kChannelBranch = "ch/";
constexpr std::string_view kEventsBranch = "events/";
constexpr std::string_view kUserBranch = "u/";
constexpr std::string_view kInboxLevel = "inbox";
constexpr std::string_view kMessageChannelBranch = "mc/";
constexpr std::string_view kMessageEventsBranch = "mcevents/";
constexpr std::string_view kStringLevel = "string";  // topics::kStringTypeLevel

}  // namespace

std::string_view verdict_name(Verdict v) {
  switch (v) {
    case Verdict::not_governed: return "not governed";
    case Verdict::allow: return "allowed";
    case Verdict::deny: return "denied";
  }
  return "?";
}

// ------------------------------------------------------------------ names

Table::Id Table::Names::acquire(std::string_view name) {
  if (const auto it = index_.find(name); it != index_.end()) {
    ++slots_[it->second].refs;
    return it->second;
  }
  Id id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = static_cast<Id>(slots_.size());
    slots_.emplace_back();
  }
  slots_[id].name.assign(name);
  slots_[id].refs = 1;
  index_.emplace(std::string_view(slots_[id].name), id);
  return id;
}

void Table::Names::release(Id id) {
  auto& slot = slots_[id];
  if (slot.refs == 0 || --slot.refs > 0) return;
  index_.erase(std::string_view(slot.name));
  slot.name.clear();
  free_.push_back(id);
}

const Table::Id* Table::Names::find(std::string_view name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &it->second;
}

// ------------------------------------------------------------------ applying records

Table::Table(std::string prefix) : prefix_(std::move(prefix)) {}

std::vector<ConnectionAction> Table::apply_message(std::string_view message, ReadResult* read) {
  std::vector<ConnectionAction> actions;
  auto result = read_records(message, [&](Record&& r) { apply(std::move(r), &actions); });
  skipped_ += result.skipped;
  if (read) *read = std::move(result);
  return actions;
}

void Table::apply(Record&& r, std::vector<ConnectionAction>* actions) {
  ++records_;
  switch (r.kind) {
    case RecordKind::sync_begin:
      building_ = std::make_unique<View>();
      building_epoch_ = r.number;
      return;
    case RecordKind::sync_end:
      if (!building_ || building_epoch_ != r.number) {
        ++skipped_;  // an end without its beginning: the live table stays
        return;
      }
      live_ = std::move(*building_);
      building_.reset();
      synced_ = true;
      epoch_ = r.number;
      ++syncs_;
      return;
    case RecordKind::token:
    case RecordKind::kick:
    case RecordKind::kick_others:
      if (actions) {
        actions->push_back({r.kind, std::move(r.uid), static_cast<std::int64_t>(r.number)});
      }
      return;
    default:
      apply_to(building_ ? *building_ : live_, std::move(r));
  }
}

void Table::apply_to(View& view, Record&& r) {
  switch (r.kind) {
    case RecordKind::session_on: {
      const Id* known = view.names.find(r.uid);
      if (known && view.sessions.count(*known)) return;
      view.sessions.insert(view.names.acquire(r.uid));
      return;
    }
    case RecordKind::session_off: {
      const Id* known = view.names.find(r.uid);
      if (!known || !view.sessions.count(*known)) return;
      const Id id = *known;
      view.sessions.erase(id);
      view.names.release(id);
      return;
    }
    case RecordKind::member:
      set_member(view, r.channel, r.uid, &r.grants);
      return;
    case RecordKind::no_member:
      set_member(view, r.channel, r.uid, nullptr);
      return;
    case RecordKind::message_channels:
      set_message_channels(view, r.uid, std::move(r.message_channels));
      return;
    default:
      return;
  }
}

Table::Stream* Table::stream(View& view, std::string_view key, bool create) {
  std::string k(key);
  auto it = view.streams.find(k);
  if (it != view.streams.end()) return &it->second;
  if (!create) return nullptr;
  return &view.streams.emplace(std::move(k), Stream{}).first->second;
}

void Table::add_stream_grants(View& view, const std::string& channel, Id uid_id,
                              const std::string& uid, const MemberGrants& g, int sign) {
  auto drop_if_empty = [&](const std::string& key) {
    auto it = view.streams.find(key);
    if (it != view.streams.end() && it->second.empty()) view.streams.erase(it);
  };
  for (const auto& topic : g.writes) {
    const std::string key = channel + "/" + topic + "/" + uid;
    if (sign > 0) {
      stream(view, key, true)->writable = true;
    } else if (Stream* s = stream(view, key, false)) {
      s->writable = false;
      drop_if_empty(key);
    }
  }
  for (const auto& [topic, publishers] : g.reads) {
    for (const auto& publisher : publishers) {
      const std::string key = channel + "/" + topic + "/" + publisher;
      if (sign > 0) {
        if (stream(view, key, true)->readers.insert(uid_id).second) ++view.read_grants;
      } else if (Stream* s = stream(view, key, false)) {
        if (s->readers.erase(uid_id) > 0) --view.read_grants;
        drop_if_empty(key);
      }
    }
  }
}

void Table::set_member(View& view, const std::string& channel, const std::string& uid,
                       const MemberGrants* grants) {
  const std::string key = channel + "/" + uid;
  if (auto it = view.member_grants.find(key); it != view.member_grants.end()) {
    const Id id = *view.names.find(uid);
    add_stream_grants(view, channel, id, uid, it->second.grants, -1);
    view.member_grants.erase(it);
    if (auto m = view.members.find(channel); m != view.members.end()) {
      m->second.erase(id);
      if (m->second.empty()) view.members.erase(m);
    }
    view.names.release(id);
  }
  if (!grants) return;
  const Id id = view.names.acquire(uid);
  view.members[channel].insert(id);
  add_stream_grants(view, channel, id, uid, *grants, +1);
  view.member_grants.emplace(key, Member{*grants});
}

void Table::set_message_channels(View& view, const std::string& uid,
                                 MessageChannelGrants&& channels) {
  auto drop = [&](std::unordered_map<std::string, std::unordered_set<Id>>& index,
                  const std::string& channel, Id id) {
    auto it = index.find(channel);
    if (it == index.end()) return;
    it->second.erase(id);
    if (it->second.empty()) index.erase(it);
  };
  if (auto it = view.mc_of.find(uid); it != view.mc_of.end()) {
    const Id id = *view.names.find(uid);
    for (const auto& [channel, presence] : it->second) {
      drop(view.mc_readers, channel, id);
      drop(view.mc_presence, channel, id);
    }
    view.mc_subscriptions -= it->second.size();
    view.mc_of.erase(it);
    view.names.release(id);
  }
  if (channels.empty()) return;
  const Id id = view.names.acquire(uid);
  for (const auto& [channel, presence] : channels) {
    view.mc_readers[channel].insert(id);
    if (presence) view.mc_presence[channel].insert(id);
  }
  view.mc_subscriptions += channels.size();
  view.mc_of.emplace(uid, std::move(channels));
}

// ------------------------------------------------------------------ decisions

// P/mc/{channel}/{publisher}[/string]: read by the channel's subscribers, written by a
// publisher with a live session in its own name (RTM 2: publishing needs no subscription).
// P/mcevents/{channel}: read by its presence subscribers, written by the gateway only.
Verdict Table::decide_message_channel(std::string_view username, std::string_view rest,
                                      Access access) const {
  const Id* reader = nullptr;
  if (starts_with(rest, kMessageEventsBranch)) {
    std::string_view parts[1];
    if (access == Access::write || !levels(rest.substr(kMessageEventsBranch.size()), parts) ||
        !synced_) {
      return Verdict::deny;
    }
    scratch_.assign(parts[0]);
    const auto it = live_.mc_presence.find(scratch_);
    reader = live_.names.find(username);
    return it != live_.mc_presence.end() && reader && it->second.count(*reader) ? Verdict::allow
                                                                                : Verdict::deny;
  }
  const std::string_view key = rest.substr(kMessageChannelBranch.size());
  std::string_view parts[3];  // channel, publisher, "string"
  std::string_view two[2];
  if (levels(key, parts)) {
    if (parts[2] != kStringLevel) return Verdict::deny;
  } else if (levels(key, two)) {
    parts[0] = two[0];
    parts[1] = two[1];
  } else {
    return Verdict::deny;
  }
  if (!synced_) return Verdict::deny;
  if (access == Access::write) {
    return parts[1] == username && has_session(username) ? Verdict::allow : Verdict::deny;
  }
  scratch_.assign(parts[0]);
  const auto it = live_.mc_readers.find(scratch_);
  reader = live_.names.find(username);
  return it != live_.mc_readers.end() && reader && it->second.count(*reader) ? Verdict::allow
                                                                             : Verdict::deny;
}

Verdict Table::decide(std::string_view username, std::string_view topic, Access access) const {
  if (topic.size() <= prefix_.size() + 1 || !starts_with(topic, prefix_) ||
      topic[prefix_.size()] != '/') {
    return Verdict::not_governed;
  }
  const std::string_view rest = topic.substr(prefix_.size() + 1);
  if (starts_with(rest, kChannelBranch)) {
    const std::string_view key = rest.substr(kChannelBranch.size());
    std::string_view parts[3];  // channel, topic, publisher
    if (!levels(key, parts) || !synced_) return Verdict::deny;
    if (access == Access::write && parts[2] != username) return Verdict::deny;
    scratch_.assign(key);
    const auto it = live_.streams.find(scratch_);
    if (it == live_.streams.end()) return Verdict::deny;
    if (access == Access::write) return it->second.writable ? Verdict::allow : Verdict::deny;
    const Id* reader = live_.names.find(username);
    return reader && it->second.readers.count(*reader) ? Verdict::allow : Verdict::deny;
  }
  if (starts_with(rest, kMessageChannelBranch) || starts_with(rest, kMessageEventsBranch)) {
    return decide_message_channel(username, rest, access);
  }
  if (starts_with(rest, kEventsBranch)) {
    const std::string_view channel = rest.substr(kEventsBranch.size());
    std::string_view parts[1];
    // Only the gateway (a service user, let through before the table) writes events.
    if (access == Access::write || !levels(channel, parts) || !synced_) return Verdict::deny;
    scratch_.assign(channel);
    const auto it = live_.members.find(scratch_);
    const Id* member = live_.names.find(username);
    return it != live_.members.end() && member && it->second.count(*member) ? Verdict::allow
                                                                             : Verdict::deny;
  }
  if (access == Access::write && starts_with(rest, kUserBranch)) {
    std::string_view parts[3];  // to, "inbox", from
    if (!levels(rest.substr(kUserBranch.size()), parts) || parts[1] != kInboxLevel) {
      return Verdict::not_governed;
    }
    if (parts[2] != username || !synced_) return Verdict::deny;
    return has_session(username) ? Verdict::allow : Verdict::deny;
  }
  return Verdict::not_governed;
}

namespace {

// `text` is `head` or starts with `head` + '/'.
bool is_or_under(std::string_view text, std::string_view head) {
  return !head.empty() && starts_with(text, head) &&
         (text.size() == head.size() || text[head.size()] == '/');
}

constexpr std::string_view kRequestBranch = "req/";
constexpr std::string_view kPresenceBranch = "presence/";

}  // namespace

Verdict Table::decide_with_tree(std::string_view username, std::string_view topic,
                                Access access) const {
  const Verdict verdict = decide(username, topic, access);
  if (verdict != Verdict::not_governed || username.empty()) return verdict;
  if (topic.size() <= prefix_.size() + 1 || !starts_with(topic, prefix_) ||
      topic[prefix_.size()] != '/') {
    return Verdict::not_governed;
  }
  const std::string_view rest = topic.substr(prefix_.size() + 1);
  if (access == Access::write && starts_with(rest, kRequestBranch)) {  // P/req/%u/#
    return is_or_under(rest.substr(kRequestBranch.size()), username) ? Verdict::allow
                                                                     : Verdict::not_governed;
  }
  if (access == Access::read && starts_with(rest, kUserBranch)) {  // P/u/%u/#
    return is_or_under(rest.substr(kUserBranch.size()), username) ? Verdict::allow
                                                                  : Verdict::not_governed;
  }
  if (starts_with(rest, kPresenceBranch)) {  // read P/presence/+, readwrite P/presence/%u
    const std::string_view uid = rest.substr(kPresenceBranch.size());
    if (uid.empty() || uid.find('/') != std::string_view::npos) return Verdict::not_governed;
    return access == Access::read || uid == username ? Verdict::allow : Verdict::not_governed;
  }
  return Verdict::not_governed;
}

Verdict Table::decide_subscribe(std::string_view username, std::string_view filter) const {
  if (filter.find_first_of("+#") == std::string_view::npos) {
    return decide(username, filter, Access::read);
  }
  // A message channel's own filters (P/mc/{channel}/#, P/mc/{channel}/+,
  // P/mc/{channel}/+/string) read what its subscribers read: decided for the channel.
  if (filter.size() > prefix_.size() + 1 + kMessageChannelBranch.size() &&
      starts_with(filter, prefix_) && filter[prefix_.size()] == '/' &&
      starts_with(filter.substr(prefix_.size() + 1), kMessageChannelBranch)) {
    const std::string_view key = filter.substr(prefix_.size() + 1 + kMessageChannelBranch.size());
    const auto slash = key.find('/');
    const std::string_view channel = key.substr(0, slash);
    const std::string_view tail = slash == std::string_view::npos ? "" : key.substr(slash + 1);
    if (channel.empty() || channel.find_first_of("+#") != std::string_view::npos ||
        (tail != "#" && tail != "+" && tail != "+/string")) {
      return Verdict::deny;
    }
    scratch_.assign(channel);
    const auto it = live_.mc_readers.find(scratch_);
    const Id* reader = live_.names.find(username);
    return synced_ && it != live_.mc_readers.end() && reader && it->second.count(*reader)
               ? Verdict::allow
               : Verdict::deny;
  }
  // Could the filter match a topic under P/ch/ or P/events/? Walk the prefix's levels,
  // then the branch level.
  std::size_t f = 0, p = 0;
  while (true) {
    const auto f_end = std::min(filter.find('/', f), filter.size());
    const std::string_view level = filter.substr(f, f_end - f);
    if (level == "#") return Verdict::deny;
    if (p > prefix_.size()) {  // the branch level
      const bool covers = level == "+" || level == "ch" || level == "events" || level == "mc" ||
                          level == "mcevents";
      return covers && f_end < filter.size() ? Verdict::deny : Verdict::not_governed;
    }
    const auto p_end = std::min(prefix_.find('/', p), prefix_.size());
    if (level != "+" && level != prefix_.substr(p, p_end - p)) return Verdict::not_governed;
    if (f_end >= filter.size()) return Verdict::not_governed;  // ends inside the prefix
    f = f_end + 1;
    p = p_end + 1;
  }
}

bool Table::has_session(std::string_view uid) const {
  const Id* id = live_.names.find(uid);
  return id && live_.sessions.count(*id) > 0;
}

TableStats Table::stats() const {
  TableStats s;
  s.sessions = live_.sessions.size();
  s.members = live_.member_grants.size();
  s.streams = live_.streams.size();
  s.read_grants = live_.read_grants;
  s.message_channel_subscriptions = live_.mc_subscriptions;
  s.syncs = syncs_;
  s.records = records_;
  s.skipped = skipped_;
  return s;
}

}  // namespace rtm::grants
