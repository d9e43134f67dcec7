// Path (b) of the coplay latency benchmark: both ends are rtm::sdk clients. The player logs
// in, joins the room and its topic "input" and publishes with StreamChannel::publish_topic;
// the host logs in, joins and subscribes to the player's input; frames arrive in the host's
// on_message handler (the SDK's dispatcher thread), which is where the receive time is taken.
#include <stdexcept>

#include "common.hpp"
#include "latency.hpp"
#include "rtm/sdk/client.hpp"

namespace rtm::bench {
namespace {

class SdkPath final : public LatencyPath {
 public:
  explicit SdkPath(const LatencyOptions& o) : o_(o) {
    if (o_.secret.empty()) throw std::runtime_error("latency sdk: --secret is needed for the logins");
  }
  ~SdkPath() override { close(); }

  void open(int first, int last, FrameSink sink) override {
    sink_ = std::move(sink);
    first_ = first;
    for (int i = first; i < last; ++i) {
      const std::string room = "room-" + o_.tag + "-" + std::to_string(i);
      const std::string player = "sp-" + o_.tag + "-" + std::to_string(i);
      const std::string host = "sh-" + o_.tag + "-" + std::to_string(i);

      auto p = std::make_unique<sdk::Client>(config(player));
      p->login().value();
      auto p_room = p->stream_channel(room);
      p_room.join().value();
      p_room.join_topic("input").value();

      auto h = std::make_unique<sdk::Client>(config(host));
      h->on_message([this, i](const sdk::MessageEvent& m) {
        const std::int64_t recv = now_ns();
        sink_(i, m.payload, recv);
      });
      h->login().value();
      auto h_room = h->stream_channel(room);
      h_room.join().value();
      auto sub = h_room.subscribe_topic("input", {player}).value();
      if (!sub.all_ok()) throw std::runtime_error("latency sdk: subscribe to " + player + " failed");

      players_.push_back(std::move(p));
      player_rooms_.push_back(p_room);
      hosts_.push_back(std::move(h));
    }
  }

  void send(int pair, std::string_view frame) override {
    (void)player_rooms_[static_cast<std::size_t>(pair - first_)].publish_topic("input", frame);
  }

  void close() override {
    player_rooms_.clear();
    players_.clear();
    hosts_.clear();
  }

  std::string describe() const override {
    return "one rtm::sdk::Client per player and per host (each its own MQTT connection); "
           "publish_topic -> on_message";
  }

 private:
  sdk::ClientConfig config(const std::string& uid) const {
    sdk::ClientConfig c;
    c.broker_uri = o_.broker;
    c.uid = uid;
    c.token = token_for(uid, o_.secret);
    c.prefix = o_.prefix;
    c.client_id = "lat-sdk-" + uid;
    return c;
  }

  const LatencyOptions o_;
  FrameSink sink_;
  int first_ = 0;
  std::vector<std::unique_ptr<sdk::Client>> players_, hosts_;
  std::vector<sdk::StreamChannel> player_rooms_;
};

}  // namespace

std::unique_ptr<LatencyPath> make_sdk_path(const LatencyOptions& options) {
  return std::make_unique<SdkPath>(options);
}

}  // namespace rtm::bench
