#include "rtm/gateway/history.hpp"

#include <spdlog/spdlog.h>

#include <limits>
#include <set>

#include "rtm/history/streams.hpp"
#include "rtm/topics/names.hpp"
#include "rtm/util/base64.hpp"
#include "rtm/util/fnv.hpp"
#include "rtm/util/random.hpp"

namespace rtm::gateway {

namespace {

// How often expired messages are dropped from streams nobody writes or reads.
constexpr std::int64_t kTrimEveryMs = 5000;
// Bytes of an answer beside its messages, and per message beside its payload (JSON keys,
// numbers): the page stops before the answer would outgrow the broker's message size.
constexpr std::size_t kAnswerOverheadBytes = 4096;
constexpr std::size_t kEntryOverheadBytes = 160;
// Epochs: random hex, different for every stream and every gateway start.
constexpr std::size_t kEpochHexDigits = 16;

using util::hash_hex;
using util::parse_hash_hex;

}  // namespace

class HistoryKeeper final : public MessageHandler,
                            public BrokerSessionObserver,
                            public Reloadable,
                            public MetricsSource {
 public:
  HistoryKeeper(Core& core, std::shared_ptr<const StateStore> state)
      : core_(core),
        state_(std::move(state)),
        config_(core.config().history),
        streams_(config_.total, [] { return util::random_hex(kEpochHexDigits); }) {}

  void start() {
    core_.set_loop_filters("history", filters());
    arm_trim();
  }

  // MessageHandler: the data topics of the streams with history.
  std::vector<std::string> filters() const override {
    std::set<std::string> out;
    for (const auto& rule : config_.streams) {
      auto level = [](const std::string& pattern) {
        return pattern.find_first_of("*?") == std::string::npos ? pattern : std::string("+");
      };
      out.insert(core_.tree().channel_message(level(rule.channel), level(rule.topic), "+"));
    }
    return {out.begin(), out.end()};
  }

  // Reads without taking: a mapping rule may relay the same message to devices.
  bool on_message(const Message& m) override {
    if (config_.streams.empty()) return false;
    auto parsed = core_.tree().parse(m.topic);
    if (!parsed || parsed->kind != topics::TopicKind::channel_message) return false;
    if (m.retained) {
      // A retained copy is a replay the subscribers do not count either.
      ++retained_skipped_;
      return false;
    }
    const auto* rule = config_.rule_for(parsed->channel, parsed->topic);
    if (!rule) {
      ++not_kept_;  // a '+' filter of a pattern rule brought a stream no rule keeps
      return false;
    }
    streams_.append(parsed->channel, parsed->topic, rule->limits, parsed->publisher, m.payload,
                    core_.now_ms());
    return false;
  }

  // BrokerSessionObserver: after a drop of the link, the gateway may have missed messages.
  void on_broker_session_lost() override {}
  void on_broker_connected() override {
    if (connected_before_) {
      streams_.mark_gap(core_.now_ms());
      ++gaps_;
    }
    connected_before_ = true;
  }

  void reload(const Config& next) override {
    config_ = next.history;
    streams_.set_total_limits(config_.total);
    core_.set_loop_filters("history", filters());
  }

  void write_metrics(MetricsWriter& out) const override {
    const auto& c = streams_.counters();
    out.gauge("rtm_history_streams", "Streams with history kept", double(streams_.size()));
    out.gauge("rtm_history_bytes", "Payload bytes kept in history", double(streams_.total_bytes()));
    out.counter("rtm_history_messages_total", "Messages written to history", double(c.appended));
    out.counter("rtm_history_too_large_total",
                "Messages over a stream's max_message_bytes (kept without payload)",
                double(c.too_large));
    out.counter("rtm_history_dropped_for_total_total",
                "Messages dropped early to stay under history.max_total_bytes",
                double(c.dropped_for_total));
    out.counter("rtm_history_evicted_streams_total",
                "Streams dropped (with their epoch) to stay under history.max_streams",
                double(c.evicted_streams));
    out.counter("rtm_history_realigned_total",
                "Recovery positions whose count was corrected by the payload hash",
                double(realigned_));
    out.counter("rtm_history_retained_skipped_total",
                "Retained copies on history streams, not kept (replays, not messages)",
                double(retained_skipped_));
    out.counter("rtm_history_not_kept_total",
                "Messages a pattern rule's filter brought from streams no rule keeps",
                double(not_kept_));
    out.counter("rtm_history_gaps_total", "Broker link drops that marked a gap in every stream",
                double(gaps_));
  }

  // subscribe's answer for a stream with history carries where the stream is, as the
  // gateway grants the subscription: {"epoch", "top", "publishers": {uid: {seq, hash}}}, the
  // baseline a subscriber starts counting from (docs/protocol.md, "Recovery").
  void add_baseline(const Params& params, json::Document& result, std::int64_t now_ms) {
    auto channel = params.name("channel");
    auto topic = params.name("topic");
    if (!channel || !topic) return;
    const auto* rule = config_.rule_for(*channel, *topic);
    if (!rule) return;
    history::Query q;
    q.limit = 0;
    auto page = streams_.open(*channel, *topic, rule->limits).read(q, now_ms);
    auto& a = result.GetAllocator();
    json::Value h(rapidjson::kObjectType);
    h.AddMember("epoch", json::str(page.epoch, a), a);
    h.AddMember("top", json::Value(static_cast<std::int64_t>(page.top)), a);
    h.AddMember("publishers", tops_json(page, a), a);
    json::set(result, "history", std::move(h));
  }

  Outcome<json::Document> history(Call& call) {
    const auto& p = call.params;
    auto channel = p.name("channel");
    if (!channel) return channel.error();
    auto topic = p.name("topic");
    if (!topic) return topic.error();
    const auto* rule = config_.rule_for(*channel, *topic);
    if (!rule) {
      return failure(ErrorCode::no_history, "channel " + *channel + " topic " + *topic +
                                                " keeps no history (history.streams)");
    }
    if (!core_.is_operator(call.uid) && !state_->is_member(call.uid, *channel)) {
      return failure(ErrorCode::not_joined,
                     call.uid + " has not joined channel " + *channel + " (members read history)");
    }
    auto query = parse_query(p);
    if (!query) return query.error();
    auto& stream = streams_.open(*channel, *topic, rule->limits);
    auto page = stream.read(query.value(), call.now_ms);
    realigned_ += page.realigned;
    return answer(*channel, *topic, page);
  }

 private:
  static constexpr std::int64_t kMaxOffset = std::numeric_limits<std::int64_t>::max();

  Outcome<history::Query> parse_query(const Params& p) const {
    history::Query q;
    auto offset = [&](std::string_view key) -> Outcome<std::optional<std::uint64_t>> {
      if (!p.has(key)) return std::optional<std::uint64_t>{};
      auto v = p.integer(key, 0, kMaxOffset);
      if (!v) return v.error();
      return std::optional<std::uint64_t>(static_cast<std::uint64_t>(*v));
    };
    for (auto [key, out] :
         {std::pair{"since", &q.since}, {"after", &q.after}, {"before", &q.before}}) {
      auto v = offset(key);
      if (!v) return v.error();
      *out = *v;
    }
    if (p.has("since_ts")) {
      auto v = p.integer("since_ts", 0, kMaxOffset);
      if (!v) return v.error();
      q.since_ms = *v;
    }
    if (auto epoch = p.optional_string("epoch")) q.epoch = *epoch;
    q.limit = 100;
    if (p.has("limit")) {
      auto v = p.integer("limit", 0, config_.max_page);
      if (!v) return v.error();
      q.limit = static_cast<std::size_t>(*v);
    }
    auto reverse = p.flag("reverse");
    if (!reverse) return reverse.error();
    q.reverse = *reverse;
    if (p.has("publishers")) {
      auto names = p.names("publishers");
      if (!names) return names.error();
      q.publishers = std::move(names.value());
    }
    if (const auto* positions = p.value("positions")) {
      auto parsed = parse_positions(*positions);
      if (!parsed) return parsed.error();
      q.positions = std::move(parsed.value());
    }
    if (q.reverse && (!q.positions.empty() || q.after)) {
      return failure(ErrorCode::invalid_parameter,
                     "reverse reads the latest messages (with before as the cursor); it does "
                     "not take positions or after");
    }
    return q;
  }

  // {"bob": {"seq": 17, "hash": "0123456789abcdef"}, ...}: seq and hash each optional.
  Outcome<std::vector<history::Position>> parse_positions(const json::Value& v) const {
    auto bad = [](std::string why) {
      return failure(ErrorCode::invalid_parameter,
                     "parameter \"positions\" must be an object {publisher: {seq, hash}}: " + why);
    };
    if (!v.IsObject()) return bad("not an object");
    const auto max =
        static_cast<rapidjson::SizeType>(core_.config().limits.publishers_per_subscription);
    if (v.MemberCount() > max) {
      return bad("at most limits.publishers_per_subscription (" + std::to_string(max) +
                 ") publishers");
    }
    const auto rules = topics::name_rules_for(core_.config().broker.profile);
    std::vector<history::Position> out;
    for (auto it = v.MemberBegin(); it != v.MemberEnd(); ++it) {
      history::Position pos;
      pos.publisher.assign(it->name.GetString(), it->name.GetStringLength());
      if (auto why = topics::name_error(pos.publisher, "publisher", rules)) {
        return failure(ErrorCode::invalid_name, *why);
      }
      if (!it->value.IsObject()) return bad(pos.publisher + " is not an object");
      for (auto m = it->value.MemberBegin(); m != it->value.MemberEnd(); ++m) {
        const std::string_view key(m->name.GetString(), m->name.GetStringLength());
        if (key == "seq" && m->value.IsUint64()) {
          pos.seq = m->value.GetUint64();
        } else if (key == "hash" && m->value.IsString()) {
          pos.hash = parse_hash_hex({m->value.GetString(), m->value.GetStringLength()});
          if (!pos.hash) return bad("a hash is 16 lower-case hex digits");
        } else {
          return bad("a position has seq (a whole number) and hash (16 hex digits)");
        }
      }
      out.push_back(std::move(pos));
    }
    return out;
  }

  json::Document answer(const std::string& channel, const std::string& topic,
                        const history::Page& page) const {
    auto doc = json::object();
    auto& a = doc.GetAllocator();
    json::set(doc, "channel", channel);
    json::set(doc, "topic", topic);
    json::set(doc, "epoch", page.epoch);
    json::set_int(doc, "top", static_cast<std::int64_t>(page.top));
    json::set_int(doc, "oldest", static_cast<std::int64_t>(page.oldest));
    const std::size_t budget = core_.config().broker.max_message_bytes > kAnswerOverheadBytes
                                   ? core_.config().broker.max_message_bytes - kAnswerOverheadBytes
                                   : 0;
    std::size_t used = 0;
    bool more = page.more;
    json::Value messages(rapidjson::kArrayType);
    for (const auto* e : page.entries) {
      const std::size_t cost =
          kEntryOverheadBytes + e->publisher.size() + e->payload.size() * 4 / 3;
      if (used + cost > budget && !messages.Empty()) {
        more = true;  // the rest on the next page
        break;
      }
      used += cost;
      json::Value m(rapidjson::kObjectType);
      m.AddMember("offset", json::Value(static_cast<std::int64_t>(e->offset)), a);
      m.AddMember("publisher", json::str(e->publisher, a), a);
      m.AddMember("seq", json::Value(static_cast<std::int64_t>(e->seq)), a);
      m.AddMember("ts", json::Value(e->ts_ms), a);
      if (e->too_large) {
        m.AddMember("too_large", true, a);
      } else if (topics::is_valid_utf8(e->payload)) {
        m.AddMember("message", json::str(e->payload, a), a);
      } else {
        m.AddMember("message", json::str(util::base64_encode(e->payload), a), a);
        m.AddMember("encoding", "base64", a);
      }
      messages.PushBack(std::move(m), a);
    }
    json::set_bool(doc, "complete", page.complete);
    json::set_bool(doc, "more", more);
    json::set(doc, "messages", std::move(messages));
    json::set(doc, "publishers", tops_json(page, a));
    return doc;
  }

  static json::Value tops_json(const history::Page& page, json::Document::AllocatorType& a) {
    json::Value publishers(rapidjson::kObjectType);
    for (const auto& [name, top] : page.publishers) {
      json::Value t(rapidjson::kObjectType);
      t.AddMember("seq", json::Value(static_cast<std::int64_t>(top.seq)), a);
      t.AddMember("hash", json::str(hash_hex(top.hash), a), a);
      t.AddMember("offset", json::Value(static_cast<std::int64_t>(top.offset)), a);
      publishers.AddMember(json::str(name, a), std::move(t), a);
    }
    return publishers;
  }

  void arm_trim() {
    core_.timers().at(core_.now_ms() + kTrimEveryMs, [this] {
      streams_.trim(core_.now_ms());
      arm_trim();
    });
  }

  Core& core_;
  std::shared_ptr<const StateStore> state_;
  HistoryConfig config_;
  history::Streams streams_;
  bool connected_before_ = false;
  std::uint64_t retained_skipped_ = 0;
  std::uint64_t not_kept_ = 0;
  std::uint64_t realigned_ = 0;
  std::uint64_t gaps_ = 0;
};

std::shared_ptr<HistoryKeeper> register_history(Core& core,
                                                std::shared_ptr<const StateStore> state) {
  auto keeper = std::make_shared<HistoryKeeper>(core, std::move(state));
  core.add_message_handler(keeper);
  core.add_broker_session_observer(keeper);
  core.add_reloadable(keeper);
  core.add_metrics_source(keeper);
  Operation op;
  op.name = "history";
  op.params = {"channel",    "topic", "since",   "since_ts", "epoch", "positions",
               "publishers", "limit", "reverse", "after",    "before"};
  op.handle = [k = keeper.get()](Call& call) { return k->history(call); };
  core.add_operation(std::move(op));
  if (const auto* subscribe = core.operation("subscribe")) {
    Operation wrapped = *subscribe;
    wrapped.handle = [k = keeper.get(), inner = subscribe->handle](Call& call) {
      auto outcome = inner(call);
      if (outcome) k->add_baseline(call.params, outcome.value(), call.now_ms);
      return outcome;
    };
    core.add_operation(std::move(wrapped));
  }
  keeper->start();
  return keeper;
}

}  // namespace rtm::gateway
