// History and recovery (docs/protocol.md, "History"): StreamChannel::history, and the
// recovery of subscribed streams after a reconnect. The data plane is raw bytes, so the
// SDK cannot read offsets off messages; it counts each publisher's messages from a
// baseline the gateway gives (history with limit 0, right after a subscribe) and keeps the
// hash of the last payload. After a reconnect it asks for what came after those positions,
// delivers it, then the live messages that arrived meanwhile minus those the history
// already held (told apart by payload hash, at the end of each publisher's history).
#include <algorithm>

#include "client_impl.hpp"
#include "json.hpp"
#include "rtm/util/base64.hpp"
#include "rtm/util/fnv.hpp"

namespace rtm::sdk::detail {

namespace {

using Lock = std::unique_lock<std::mutex>;

// Pages of one stream's recovery: a stream that missed more than this many pages is left
// incomplete rather than holding its live messages for ever.
constexpr int kMaxRecoveryPages = 100;
// Messages per page when recovering (the gateway caps it at history.max_page and by size).
constexpr std::int64_t kRecoveryPageSize = 1000;
// Messages per publisher remembered between a subscribe and its answer.
constexpr std::size_t kMaxBeforeBaseline = 1024;

std::uint64_t payload_hash(std::string_view payload) {
  return util::fnv1a64(payload);
}

using util::hash_hex;

struct Top {
  std::uint64_t seq = 0;
  std::uint64_t hash = 0;
};

struct ParsedPage {
  HistoryPage page;
  std::map<std::string, Top> publishers;  // each one's newest entry at the gateway
};

ParsedPage parse_page(const rapidjson::Value& r) {
  ParsedPage out;
  auto& p = out.page;
  p.epoch = json::str(r, "epoch");
  p.top = static_cast<std::uint64_t>(json::int64(r, "top"));
  p.oldest = static_cast<std::uint64_t>(json::int64(r, "oldest"));
  p.complete = json::boolean(r, "complete", true);
  p.more = json::boolean(r, "more");
  if (auto it = r.FindMember("messages"); it != r.MemberEnd() && it->value.IsArray()) {
    for (const auto& m : it->value.GetArray()) {
      HistoryMessage h;
      h.offset = static_cast<std::uint64_t>(json::int64(m, "offset"));
      h.publisher = json::str(m, "publisher");
      h.seq = static_cast<std::uint64_t>(json::int64(m, "seq"));
      h.ts = json::int64(m, "ts");
      h.too_large = json::boolean(m, "too_large");
      h.payload = json::str(m, "message");
      if (json::str(m, "encoding") == "base64") {
        h.payload = util::base64_decode(h.payload).value_or(std::string());
      }
      p.messages.push_back(std::move(h));
    }
  }
  if (auto it = r.FindMember("publishers"); it != r.MemberEnd() && it->value.IsObject()) {
    for (auto m = it->value.MemberBegin(); m != it->value.MemberEnd(); ++m) {
      Top t;
      t.seq = static_cast<std::uint64_t>(json::int64(m->value, "seq"));
      t.hash = util::parse_hash_hex(json::str(m->value, "hash")).value_or(0);
      out.publishers[std::string(m->name.GetString(), m->name.GetStringLength())] = t;
    }
  }
  return out;
}

std::string query_body(const std::string& channel, const std::string& topic,
                       const HistoryQuery& q) {
  json::Object o;
  o.str("channel", channel).str("topic", topic);
  if (q.since) o.int64("since", static_cast<std::int64_t>(*q.since));
  if (q.since_ts) o.int64("since_ts", *q.since_ts);
  if (!q.epoch.empty()) o.str("epoch", q.epoch);
  if (!q.publishers.empty()) o.list("publishers", q.publishers);
  o.int64("limit", static_cast<std::int64_t>(q.limit));
  if (q.reverse) o.boolean("reverse", true);
  if (q.after) o.int64("after", static_cast<std::int64_t>(*q.after));
  if (q.before) o.int64("before", static_cast<std::int64_t>(*q.before));
  return o.text();
}

}  // namespace

void ClientImpl::history(const std::string& channel, const std::string& topic,
                         const HistoryQuery& query, Callback<HistoryPage> done) {
  if (auto e = name_problem("channel", channel)) return done(Status(ErrorCode::invalid_name, *e));
  if (auto e = name_problem("topic", topic)) return done(Status(ErrorCode::invalid_name, *e));
  send_request("history", query_body(channel, topic, query), "history " + channel + "/" + topic,
               [done](Reply r) {
                 if (!r.status.ok()) return done(r.status);
                 done(parse_page(r.result()).page);
               });
}

void ClientImpl::expect_stream_locked(const std::string& channel, const std::string& topic) {
  if (config_.recover_streams) streams_.try_emplace({channel, topic});
}

void ClientImpl::track_stream(const std::string& channel, const std::string& topic,
                              const rapidjson::Value& result) {
  if (!config_.recover_streams) return;
  Lock lock(mutex_);
  auto it = streams_.find({channel, topic});
  const auto h = result.IsObject() ? result.FindMember("history") : result.MemberEnd();
  if (!result.IsObject() || h == result.MemberEnd() || !h->value.IsObject()) {
    if (it != streams_.end() && !it->second.baseline) streams_.erase(it);  // no history here
    return;
  }
  if (it == streams_.end()) it = streams_.try_emplace({channel, topic}).first;
  auto& s = it->second;
  auto parsed = parse_page(h->value);
  if (s.baseline) {
    // Subscribed to more publishers: those new to the stream start at the gateway's count.
    if (parsed.page.epoch != s.epoch) return;  // the next recovery sorts it out
    for (const auto& [name, top] : parsed.publishers) {
      s.publishers.try_emplace(name, PublisherPosition{top.seq, top.hash});
    }
    return;
  }
  s.epoch = parsed.page.epoch;
  s.since = parsed.page.top;
  // What arrived before this answer may be before or after the gateway's count: placed by
  // the hash of the gateway's newest message of each publisher among them.
  for (const auto& [name, top] : parsed.publishers) {
    auto& pos = s.publishers[name];
    const auto seen = s.before_baseline.find(name);
    if (seen == s.before_baseline.end() || seen->second.empty()) {
      pos = PublisherPosition{top.seq, top.hash};
      continue;
    }
    const auto& hashes = seen->second;
    std::size_t after = hashes.size();  // all of them came after the gateway's newest
    for (std::size_t i = hashes.size(); i-- > 0;) {
      if (hashes[i] == top.hash) {
        after = hashes.size() - 1 - i;
        break;
      }
    }
    pos = PublisherPosition{top.seq + after, hashes.back()};
  }
  for (const auto& [name, hashes] : s.before_baseline) {
    if (!parsed.publishers.count(name) && !hashes.empty()) {
      s.publishers[name] = PublisherPosition{hashes.size(), hashes.back()};
    }
  }
  s.before_baseline.clear();
  s.baseline = true;
}

bool ClientImpl::on_stream_message_locked(const MessageEvent& ev, bool retained) {
  auto it = streams_.find({ev.channel, ev.topic});
  if (it == streams_.end() || retained) return true;  // a retained copy is not counted
  auto& s = it->second;
  if (!s.baseline && !s.recovering) {
    auto& hashes = s.before_baseline[ev.publisher];
    if (hashes.size() >= kMaxBeforeBaseline) hashes.erase(hashes.begin());
    hashes.push_back(payload_hash(ev.payload));
    return true;
  }
  if (s.recovering) {
    if (s.held.size() >= config_.max_recovery_buffer) {
      s.held.erase(s.held.begin());
      s.overflowed = true;
    }
    s.held.push_back(ev);
    return false;
  }
  auto& p = s.publishers[ev.publisher];
  p.seq = p.seq ? *p.seq + 1 : (s.epoch.empty() ? std::optional<std::uint64_t>() : 1);
  p.hash = payload_hash(ev.payload);
  return true;
}

void ClientImpl::hold_streams_locked() {
  for (auto& [key, s] : streams_) s.recovering = true;
}

bool ClientImpl::subscribed_locked(const StreamKey& key) const {
  const auto ch = channels_.find(key.first);
  if (ch == channels_.end()) return false;
  if (ch->second.all.count(key.second)) return true;
  const auto by_name = ch->second.subscribed.find(key.second);
  return by_name != ch->second.subscribed.end() && !by_name->second.empty();
}

void ClientImpl::untrack_streams_locked(const std::string& channel) {
  for (auto it = streams_.lower_bound({channel, std::string()});
       it != streams_.end() && it->first.first == channel;) {
    it = subscribed_locked(it->first) ? std::next(it) : streams_.erase(it);
  }
}

bool ClientImpl::recover_streams(std::vector<std::string>& problems) {
  std::vector<StreamKey> keys;
  {
    Lock lock(mutex_);
    for (auto it = streams_.begin(); it != streams_.end();) {
      // Streams no longer subscribed to (unsubscribed, left, or lost at the restore) go.
      if (!subscribed_locked(it->first)) {
        std::vector<MessageEvent> held = std::move(it->second.held);
        it = streams_.erase(it);
        for (auto& ev : held) emit(handler_of<MessageEvent>(), std::move(ev), true);
        continue;
      }
      keys.push_back(it->first);
      ++it;
    }
  }
  for (const auto& key : keys) {
    const auto& [channel, topic] = key;
    std::string epoch;
    std::uint64_t since = 0;
    std::map<std::string, PublisherPosition> positions;
    {
      Lock lock(mutex_);
      auto it = streams_.find(key);
      if (it == streams_.end()) continue;
      epoch = it->second.epoch;
      since = it->second.since;
      positions = it->second.publishers;
    }
    std::vector<HistoryMessage> missed;
    std::map<std::string, Top> tops;
    std::string new_epoch = epoch;
    std::uint64_t top = since;
    bool complete = true;
    std::string reason;
    std::optional<std::uint64_t> after;
    bool unknown_baseline = epoch.empty();
    for (int page = 0;; ++page) {
      if (page == kMaxRecoveryPages) {
        complete = false;
        reason = "more than " + std::to_string(kMaxRecoveryPages) + " pages were missed";
        break;
      }
      json::Object o;
      o.str("channel", channel).str("topic", topic).int64("limit", kRecoveryPageSize);
      if (!unknown_baseline) {
        o.str("epoch", epoch).int64("since", static_cast<std::int64_t>(since));
        if (!positions.empty()) {
          std::string text = "{";
          for (const auto& [name, pos] : positions) {
            json::Object p;
            if (pos.seq) p.int64("seq", static_cast<std::int64_t>(*pos.seq));
            if (pos.hash) p.str("hash", hash_hex(*pos.hash));
            if (text.size() > 1) text += ',';
            rapidjson::StringBuffer b;
            rapidjson::Writer<rapidjson::StringBuffer> w(b);
            w.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
            text += std::string(b.GetString(), b.GetSize()) + ":" + p.text();
          }
          text += "}";
          o.raw("positions", text, rapidjson::kObjectType);
        }
      } else {
        o.int64("limit", 0);  // no baseline yet: only where the stream is now
      }
      if (after) o.int64("after", static_cast<std::int64_t>(*after));
      auto r = call_sync("history", o.text(), "history " + channel + "/" + topic + " (recover)",
                         config_.request_timeout);
      if (transport_failure(r.status)) return false;
      if (!r.status.ok()) {
        problems.push_back("history " + channel + "/" + topic + ": " + r.status.to_string());
        complete = false;
        reason = r.status.to_string();
        break;
      }
      auto parsed = parse_page(r.result());
      new_epoch = parsed.page.epoch;
      top = parsed.page.top;
      if (unknown_baseline) {
        // Subscribed while the gateway could not answer: from now on, nothing to recover.
        complete = false;
        reason = "no baseline: the stream's position was not known before the disconnect";
        for (const auto& [name, t] : parsed.publishers) tops[name] = t;
        break;
      }
      if (!parsed.page.complete && complete) {
        complete = false;
        reason = parsed.page.epoch != epoch ? "the stream's history restarted (epoch " + epoch +
                                                  " -> " + parsed.page.epoch + ")"
                                            : "messages missed were no longer kept";
      }
      for (const auto& [name, t] : parsed.publishers) tops[name] = t;
      for (auto& m : parsed.page.messages) {
        after = m.offset;
        missed.push_back(std::move(m));
      }
      if (!parsed.page.more || parsed.page.messages.empty()) break;
    }

    // Deliver: the missed messages, then the held live ones the history did not hold.
    Lock lock(mutex_);
    auto it = streams_.find(key);
    if (it == streams_.end()) continue;
    auto& s = it->second;
    std::map<std::string, std::vector<const HistoryMessage*>> missed_by;
    for (const auto& m : missed) missed_by[m.publisher].push_back(&m);
    std::map<std::string, std::size_t> skip;  // leading held messages per publisher to drop
    std::map<std::string, std::vector<const MessageEvent*>> held_by;
    for (const auto& ev : s.held) held_by[ev.publisher].push_back(&ev);
    for (const auto& [name, held] : held_by) {
      auto t = tops.find(name);
      if (t == tops.end()) continue;  // the history holds nothing of it: all are new
      // The shortest run of held messages that ends in the gateway's newest one and agrees
      // with the end of what the history returned.
      const auto& from_history = missed_by[name];
      for (std::size_t i = 0; i < held.size(); ++i) {
        if (payload_hash(held[i]->payload) != t->second.hash) continue;
        bool agrees = true;
        for (std::size_t k = 0; k < i && agrees; ++k) {
          // held[i] is the top, the history's last entry; held[k] is `back` entries before.
          const std::size_t back = i - k;
          if (back < from_history.size()) {
            agrees = from_history[from_history.size() - 1 - back]->payload == held[k]->payload;
          }
        }
        if (agrees) {
          skip[name] = i + 1;
          break;
        }
      }
    }
    const bool overflowed = s.overflowed;
    if (overflowed && complete) {
      complete = false;
      reason = "more live messages arrived during the recovery than max_recovery_buffer";
    }
    for (auto& m : missed) {
      MessageEvent ev;
      ev.channel = channel;
      ev.topic = topic;
      ev.publisher = m.publisher;
      ev.payload = std::move(m.payload);
      ev.recovered = true;
      ev.offset = m.offset;
      ev.ts = m.ts;
      auto& p = s.publishers[m.publisher];
      p.seq = m.seq;
      p.hash = payload_hash(ev.payload);
      emit(handler_of<MessageEvent>(), std::move(ev), true);
    }
    std::map<std::string, std::size_t> seen;
    std::size_t live = 0;
    for (auto& ev : s.held) {
      if (seen[ev.publisher]++ < skip[ev.publisher]) continue;
      auto& p = s.publishers[ev.publisher];
      if (auto t = tops.find(ev.publisher); t != tops.end() && (!p.seq || *p.seq < t->second.seq)) {
        p.seq = t->second.seq;  // the history's newest of it was held live, not returned
      }
      p.seq = p.seq ? *p.seq + 1 : std::optional<std::uint64_t>(1);
      p.hash = payload_hash(ev.payload);
      ++live;
      emit(handler_of<MessageEvent>(), std::move(ev), true);
    }
    for (const auto& [name, t] : tops) {
      auto& p = s.publishers[name];
      if (!p.seq && !p.hash) p = PublisherPosition{t.seq, t.hash};
    }
    s.held.clear();
    s.overflowed = false;
    s.recovering = false;
    s.epoch = new_epoch;
    s.since = top;
    RecoveryEvent ev;
    ev.channel = channel;
    ev.topic = topic;
    ev.complete = complete;
    ev.recovered = missed.size();
    ev.reason = reason;
    emit(handler_of<RecoveryEvent>(), std::move(ev));
  }
  return true;
}

}  // namespace rtm::sdk::detail
