// The presence-state operations of issue 15 (docs/protocol.md, "Presence states"):
// set_state, remove_state, get_state over the PresenceStateStore seam, and the
// state_changed channel event. who_now's include_state reads the same seam (rtm/).
#include "state_operations.hpp"

#include <string>
#include <utility>
#include <vector>

#include "rtm/storage/states.hpp"
#include "storage_params.hpp"

namespace rtm::gateway {
namespace {

using json::Document;
using namespace storage_ops;
namespace st = rtm::storage;

// `states`: a JSON object of strings, in the body.
Outcome<std::vector<std::pair<std::string, std::string>>> states_param(const Params& params) {
  const auto* v = params.value("states");
  if (!v) return failure(ErrorCode::missing_parameter, "parameter \"states\" is required");
  if (!v->IsObject()) {
    return failure(ErrorCode::invalid_parameter,
                   "parameter \"states\" must be a JSON object of strings: {\"seat\":\"2\"}");
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& m : v->GetObject()) {
    std::string key(m.name.GetString(), m.name.GetStringLength());
    if (!m.value.IsString()) {
      return failure(ErrorCode::invalid_parameter,
                     "state " + quoted(key) + " must have a string value");
    }
    out.emplace_back(std::move(key), std::string(m.value.GetString(), m.value.GetStringLength()));
  }
  return out;
}

class StateService final : public Reloadable, public MetricsSource {
 public:
  StateService(Core& core, std::shared_ptr<StateStore> store)
      : core_(core), store_(std::move(store)), state_(*store_), states_(state_.states()) {
    states_.set_limits(core_.config().storage.states);
  }

  void install() {
    add("set_state", {"channel", "states"}, [this](Call& c) { return set_op(c); });
    add("remove_state", {"channel", "keys"}, [this](Call& c) { return remove_op(c); });
    add("get_state", {"channel", "uid"}, [this](Call& c) { return get_op(c); });
  }

  void reload(const Config& next) override { states_.set_limits(next.storage.states); }

  void write_metrics(MetricsWriter& out) const override {
    out.gauge("rtm_presence_states", "Channel members with presence states",
              static_cast<double>(states_.holder_count()));
  }

 private:
  void add(const char* name, std::vector<std::string_view> params,
           std::function<Outcome<Document>(Call&)> handle) {
    core_.add_operation({name, true, std::move(params), std::move(handle)});
  }

  // Only members have states.
  Outcome<std::string> member_channel(Call& call) {
    auto channel = call.params.name("channel");
    if (!channel) return channel.error();
    if (!state_.is_member(call.uid, *channel)) {
      return failure(ErrorCode::not_joined, call.uid + " has not joined channel " + *channel +
                                                " (members have presence states)");
    }
    return channel;
  }

  static Document states_json(const std::string& channel, const std::string& uid,
                              const st::StateItems& states, Document doc = json::object()) {
    auto& a = doc.GetAllocator();
    json::set(doc, "channel", channel);
    json::set(doc, "uid", uid);
    json::set(doc, "states", json::string_map(states, a));
    return doc;
  }

  // Members hear of a change on P/events/{channel}, with the full states after it.
  Document answer(const st::StateChange& change) {
    if (change.changed()) {
      auto e = json::object();
      json::set(e, "event", "state_changed");
      json::set_int(e, "ts", core_.now_ms());
      e = states_json(change.channel, change.uid, change.states, std::move(e));
      json::set(e, "written", json::string_array(change.written, e.GetAllocator()));
      json::set(e, "removed", json::string_array(change.removed, e.GetAllocator()));
      core_.publish(core_.tree().channel_events(change.channel), json::dump(e), 1, false);
    }
    return states_json(change.channel, change.uid, change.states);
  }

  Outcome<Document> set_op(Call& call) {
    auto channel = member_channel(call);
    if (!channel) return channel.error();
    auto items = states_param(call.params);
    if (!items) return items.error();
    auto change = states_.set(*channel, call.uid, *items);
    if (!change) return wire_failure(change.error());
    return answer(*change);
  }

  Outcome<Document> remove_op(Call& call) {
    auto channel = member_channel(call);
    if (!channel) return channel.error();
    auto keys = keys_param(call.params);
    if (!keys) return keys.error();
    auto change = states_.remove(*channel, call.uid, *keys);
    if (!change) return wire_failure(change.error());
    return answer(*change);
  }

  Outcome<Document> get_op(Call& call) {
    auto channel = call.params.name("channel");
    if (!channel) return channel.error();
    std::string uid = call.uid;
    if (call.params.has("uid")) {
      auto named = call.params.name("uid");
      if (!named) return named.error();
      uid = std::move(named).value();
    }
    if (auto refused = channel_read_refusal(core_, state_, call.uid, *channel, "its states")) {
      return *refused;
    }
    return states_json(*channel, uid, states_.get(*channel, uid));
  }

  Core& core_;
  std::shared_ptr<StateStore> store_;
  StateStore& state_;
  PresenceStateStore& states_;
};

}  // namespace

void register_state_operations(Core& core, std::shared_ptr<StateStore> store) {
  auto service = std::make_shared<StateService>(core, std::move(store));
  service->install();
  core.add_reloadable(service);
  core.add_metrics_source(service);
}

}  // namespace rtm::gateway
