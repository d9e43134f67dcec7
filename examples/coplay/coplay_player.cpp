// coplay-player: a controller in the coplay scenario. Joins the room channel, becomes a
// publisher of topic "input", and sends an input frame (sequence number, send time,
// buttons, axes) --rate times a second for --seconds, straight to the broker.
//
//   coplay-player --config config.yaml --uid p2 --room room-42 --rate 60 --seconds 30
#include <cmath>
#include <iostream>

#include "coplay_common.hpp"

int main(int argc, char** argv) {
  CLI::App app{"coplay-player: sends controller input frames to a coplay room"};
  coplay::Options options;
  options.uid = "player-" + std::to_string(::getpid());
  double rate = 60;
  double seconds = 10;
  int qos = 0;
  std::string format = "binary";
  coplay::add_options(app, options);
  app.add_option("--rate", rate, "frames per second")->capture_default_str()->check(CLI::Range(0.1, 10000.0));
  app.add_option("--seconds", seconds, "how long to play (0: until Ctrl-C)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--qos", qos, "MQTT QoS of the frames")->capture_default_str()->check(CLI::Range(0, 1));
  app.add_option("--format", format, "frame encoding")->capture_default_str()->check(CLI::IsMember({"binary", "json"}));
  CLI11_PARSE(app, argc, argv);

  const sigset_t stop_signals = coplay::block_stop_signals();
  try {
    rtm::sdk::Client client(coplay::client_config(options));
    client.on_connection_state([](const rtm::sdk::ConnectionStateEvent& e) {
      if (e.state != rtm::sdk::ConnectionState::connecting) {
        std::cerr << "[" << rtm::sdk::to_string(e.state) << "] " << rtm::sdk::to_string(e.reason)
                  << ": " << e.message << std::endl;
      }
    });
    client.login().value();  // throws rtm::sdk::Error with the gateway's code and message
    auto room = client.stream_channel(options.room);
    auto snapshot = room.join().value();
    room.join_topic("input").value();
    std::cerr << client.uid() << " joined " << options.room << " (" << snapshot.members.size()
              << " member(s)); sending " << rate << " frames/s on topic input"
              << (seconds > 0 ? " for " + std::to_string(seconds) + " s" : "") << std::endl;

    const auto period = std::chrono::nanoseconds(static_cast<std::int64_t>(1e9 / rate));
    const auto start = std::chrono::steady_clock::now();
    const auto end = seconds > 0 ? start + std::chrono::nanoseconds(static_cast<std::int64_t>(seconds * 1e9))
                                 : std::chrono::steady_clock::time_point::max();
    auto next = start;
    std::uint32_t seq = 0;
    std::uint64_t failed = 0;
    bool stopped = false;
    while (next < end) {
      if (coplay::wait_until_or_signal(stop_signals, next)) {
        stopped = true;
        break;
      }
      // Made-up input: A toggles every half second, the left stick turns in a circle.
      coplay::Frame f;
      f.seq = seq;
      const double t = static_cast<double>(seq) / rate;
      f.buttons = static_cast<std::uint16_t>((static_cast<int>(t * 2) % 2) ? 0x1 : 0x0);
      f.axes = {static_cast<std::int16_t>(32767 * std::cos(t)), static_cast<std::int16_t>(32767 * std::sin(t)), 0, 0};
      f.sent_ns = coplay::now_ns();
      const auto payload = format == "json" ? coplay::encode_json(f) : coplay::encode_binary(f);
      auto r = room.publish_topic("input", payload, rtm::sdk::PublishOptions{qos});
      if (!r.ok() && failed++ == 0) std::cerr << "publish failed: " << r.status().to_string() << std::endl;
      ++seq;
      next += period;
      // After a stall (e.g. a reconnect), skip the frames that are already late.
      const auto now = std::chrono::steady_clock::now();
      if (now - next > 10 * period) next = now;
    }
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cerr << "sent " << seq << " frames in " << took << " s" << (failed ? ", " + std::to_string(failed) + " not sent" : "")
              << (stopped ? " (stopped)" : "") << std::endl;
    room.leave_topic("input");
    room.leave();
    client.logout();
  } catch (const std::exception& e) {
    std::cerr << "coplay-player: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
