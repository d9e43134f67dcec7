// Paths (a) and (c) of the coplay latency benchmark, with plain Paho clients:
//   direct: the player publishes P/ch/{room}/input/{player}; the host subscribes to it.
//   bridge: the player is a legacy controller publishing coplay/{room}/{player}/input; the
//           coplay mapping rule carries it to P/ch/{room}/input/{player}, which the host reads.
//   p2p:    the player sends peer messages to P/u/{host}/inbox/{player}, which the host reads
//           (with the gateway's inbox.offline on, the gateway reads a copy of each).
// Only the player's topic differs between them.
#include <atomic>
#include <stdexcept>
#include <unordered_map>

#include "common.hpp"
#include "latency.hpp"

namespace rtm::bench {
namespace {

class MqttPath final : public LatencyPath {
 public:
  explicit MqttPath(const LatencyOptions& o) : o_(o) {}
  ~MqttPath() override { close(); }

  void open(int first, int last, FrameSink sink) override {
    sink_ = std::move(sink);
    first_ = first;
    const int pairs = last - first;
    const int group = std::max(1, o_.pairs_per_connection);
    const int conns = (pairs + group - 1) / group;
    const bool bridge = o_.path == "bridge";
    if (o_.token_login && group != 1) {
      throw std::runtime_error("latency: token logins need one connection per player and per host");
    }
    for (int i = first; i < last; ++i) {
      const std::string room = latency_room(o_, i);
      const std::string player = latency_player(o_, i);
      const std::string data_topic =
          o_.path == "p2p" ? o_.prefix + "/u/" + latency_host(o_, i) + "/inbox/" + player
                           : o_.prefix + "/ch/" + room + "/input/" + player;
      publish_topics_.push_back(bridge ? "coplay/" + room + "/" + player + "/input" : data_topic);
      host_topics_.push_back(data_topic);
      pair_of_topic_.emplace(data_topic, i);
    }
    std::vector<mqtt::token_ptr> pending;
    for (int c = 0; c < conns; ++c) {
      const std::string base = "lat-" + o_.path + "-" + o_.tag + "-" + std::to_string(first + c * group);
      if (o_.token_login) {  // the plugin's rule: the client id is the uid or starts with "uid/"
        players_.push_back(make_client(o_.broker, latency_player(o_, first + c) + "/lat"));
        hosts_.push_back(make_client(o_.broker, latency_host(o_, first + c) + "/lat"));
      } else {
        players_.push_back(make_client(o_.broker, base + "-player"));
        hosts_.push_back(make_client(o_.broker, base + "-host"));
      }
      hosts_.back()->set_message_callback([this](mqtt::const_message_ptr m) {
        const std::int64_t recv = now_ns();
        auto it = pair_of_topic_.find(m->get_topic());
        if (it == pair_of_topic_.end()) return;
        const auto& payload = m->get_payload_ref();
        sink_(it->second, std::string_view(payload.data(), payload.size()), recv);
      });
    }
    // Connect everything at once, then wait.
    mqtt::connect_options opts;
    opts.set_mqtt_version(MQTTVERSION_3_1_1);
    opts.set_clean_session(true);
    opts.set_keep_alive_interval(60);
    for (int c = 0; c < conns; ++c) {
      for (bool host : {false, true}) {
        auto& client = host ? hosts_[static_cast<std::size_t>(c)] : players_[static_cast<std::size_t>(c)];
        if (o_.token_login) {
          const std::string uid = host ? latency_host(o_, first + c) : latency_player(o_, first + c);
          opts.set_user_name(uid);
          opts.set_password(token_for(uid, o_.secret));
        }
        pending.push_back(client->connect(opts));
      }
    }
    for (auto& t : pending) {
      if (!t->wait_for(20s)) throw std::runtime_error("latency: connect timed out");
    }
    pending.clear();
    for (int i = 0; i < pairs; ++i) {
      pending.push_back(hosts_[static_cast<std::size_t>(i / group)]->subscribe(
          host_topics_[static_cast<std::size_t>(i)], 0));
    }
    for (auto& t : pending) {
      if (!t->wait_for(20s)) throw std::runtime_error("latency: subscribe timed out");
    }
    group_ = group;
  }

  void send(int pair, std::string_view frame) override {
    const auto i = static_cast<std::size_t>(pair - first_);
    try {
      players_[i / static_cast<std::size_t>(group_)]->publish(publish_topics_[i], frame.data(),
                                                              frame.size(), 0, false);
    } catch (const std::exception&) {
      ++refused_;  // counted as lost by the receiver
    }
  }

  void close() override {
    for (auto* list : {&players_, &hosts_}) {
      for (auto& c : *list) disconnect(*c);
    }
    players_.clear();
    hosts_.clear();
  }

  std::string describe() const override {
    const int group = std::max(1, o_.pairs_per_connection);
    std::string how = group == 1 ? "one Paho connection per player and one per host"
                                 : "one Paho connection per " + std::to_string(group) +
                                       " players and one per " + std::to_string(group) + " hosts";
    if (o_.token_login) how += ", token logins";
    return how + (o_.path == "bridge"
                      ? "; players publish coplay/{room}/{player}/input (mapping rule "
                        "controller-input), hosts read P/ch/{room}/input/{player}"
                  : o_.path == "p2p"
                      ? "; players send peer messages to P/u/{host}/inbox/{player}, hosts read them"
                      : "; players publish P/ch/{room}/input/{player}, hosts subscribe to it");
  }

 private:
  const LatencyOptions o_;
  FrameSink sink_;
  int group_ = 1;
  int first_ = 0;
  std::vector<std::string> publish_topics_, host_topics_;
  std::unordered_map<std::string, int> pair_of_topic_;  // read-only once open
  std::vector<std::unique_ptr<mqtt::async_client>> players_, hosts_;
  std::atomic<std::uint64_t> refused_{0};
};

}  // namespace

std::string latency_room(const LatencyOptions& o, int pair) { return "room-" + o.tag + "-" + std::to_string(pair); }
std::string latency_player(const LatencyOptions& o, int pair) {
  return o.path.substr(0, 1) + "p-" + o.tag + "-" + std::to_string(pair);
}
std::string latency_host(const LatencyOptions& o, int pair) {
  return o.path.substr(0, 1) + "h-" + o.tag + "-" + std::to_string(pair);
}

std::unique_ptr<LatencyPath> make_mqtt_path(const LatencyOptions& options) {
  return std::make_unique<MqttPath>(options);
}

}  // namespace rtm::bench
