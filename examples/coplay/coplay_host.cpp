// coplay-host: the host of a coplay room. Joins the room channel, subscribes to the "input"
// topic of every player as it appears (channel events), and prints a line per second:
// frames received, lost, out of order, and one-way latency p50/p99 per player (from the
// send time in each frame; meaningful on one machine, or with synchronised clocks).
//
//   coplay-host --config config.yaml --uid host --room room-42
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <vector>

#include "coplay_common.hpp"

namespace {

struct PlayerStats {
  // since the start
  std::uint64_t received = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t duplicates = 0;
  std::int64_t first_seq = -1;
  std::int64_t max_seq = -1;
  std::vector<bool> seen;  // by seq - first_seq
  std::vector<double> all_latency_ms;
  // this second
  std::uint64_t window_received = 0;
  std::vector<double> window_latency_ms;
  bool gone = false;

  std::uint64_t lost() const {
    if (max_seq < 0) return 0;
    const auto expected = static_cast<std::uint64_t>(max_seq - first_seq + 1);
    const auto distinct = received - duplicates;
    return expected > distinct ? expected - distinct : 0;
  }
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

std::string fmt_ms(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"coplay-host: receives the players' input in a coplay room and measures it"};
  coplay::Options options;
  options.uid = "host";
  double seconds = 0;
  std::string topic = "input";
  coplay::add_options(app, options);
  app.add_option("--seconds", seconds, "stop after this long (0: at Ctrl-C)")->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--topic", topic, "the players' topic")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const sigset_t stop_signals = coplay::block_stop_signals();
  std::mutex mutex;
  std::map<std::string, PlayerStats> players;
  std::uint64_t bad_frames = 0;

  try {
    rtm::sdk::Client client(coplay::client_config(options));
    auto room = client.stream_channel(options.room);
    const std::string me = client.uid();

    client.on_connection_state([](const rtm::sdk::ConnectionStateEvent& e) {
      if (e.state != rtm::sdk::ConnectionState::connecting) {
        std::cout << "[" << rtm::sdk::to_string(e.state) << "] " << rtm::sdk::to_string(e.reason)
                  << ": " << e.message << std::endl;
      }
    });
    // Each frame: sequence bookkeeping and latency, on the SDK's dispatcher thread.
    client.on_message([&](const rtm::sdk::MessageEvent& m) {
      const auto now = coplay::now_ns();
      auto frame = coplay::decode(m.payload);
      std::lock_guard<std::mutex> lock(mutex);
      if (!frame) {
        ++bad_frames;
        return;
      }
      auto& s = players[m.publisher];
      const auto seq = static_cast<std::int64_t>(frame->seq);
      if (s.first_seq < 0 || seq < s.first_seq - 100000) {  // first frame, or a new run
        s = PlayerStats{};
        s.first_seq = seq;
      }
      if (seq < s.first_seq) return;  // from before the first frame we saw
      const auto index = static_cast<std::size_t>(seq - s.first_seq);
      if (index >= s.seen.size()) s.seen.resize(index + 1024, false);
      if (s.seen[index]) ++s.duplicates;
      s.seen[index] = true;
      if (seq < s.max_seq) ++s.out_of_order;
      s.max_seq = std::max(s.max_seq, seq);
      ++s.received;
      ++s.window_received;
      const double latency_ms = (static_cast<double>(now) - static_cast<double>(frame->sent_ns)) / 1e6;
      s.window_latency_ms.push_back(latency_ms);
      s.all_latency_ms.push_back(latency_ms);
    });
    // Players appear and go: subscribe to each new publisher of the topic. Calling the SDK
    // from inside a callback is fine; the async form keeps the dispatcher free.
    client.on_channel_event([&, room, me](const rtm::sdk::ChannelEvent& e) mutable {
      using T = rtm::sdk::ChannelEventType;
      if (e.type == T::publisher_joined && e.topic == topic && e.uid != me) {
        std::cout << "+ " << e.uid << " publishes " << topic << "; subscribing" << std::endl;
        room.subscribe_topic_async(topic, {e.uid}, [uid = e.uid](rtm::sdk::Result<rtm::sdk::SubscribeResult> r) {
          if (!r.ok()) std::cout << "! subscribe " << uid << ": " << r.status().to_string() << std::endl;
        });
      } else if (e.type == T::publisher_left && e.topic == topic) {
        std::cout << "- " << e.uid << " left " << topic << " (" << e.reason << ")" << std::endl;
        std::lock_guard<std::mutex> lock(mutex);
        auto it = players.find(e.uid);
        if (it != players.end()) it->second.gone = true;
      } else if (e.type == T::member_joined) {
        std::cout << "+ " << e.uid << " joined " << e.channel << std::endl;
      } else if (e.type == T::member_left || e.type == T::member_timed_out) {
        std::cout << "- " << e.uid << " left " << e.channel << " (" << e.reason << ")" << std::endl;
      }
    });

    client.login().value();
    auto snapshot = room.join().value();
    std::vector<std::string> publishers;
    for (const auto& t : snapshot.topics) {
      if (t.topic != topic) continue;
      for (const auto& p : t.publishers) {
        if (p != me) publishers.push_back(p);
      }
    }
    if (!publishers.empty()) room.subscribe_topic(topic, publishers).value();
    std::cout << me << " hosts " << options.room << " (members: " << snapshot.members.size()
              << ", players already publishing: " << publishers.size() << "); Ctrl-C to stop"
              << std::endl;

    const auto start = std::chrono::steady_clock::now();
    auto next = start + std::chrono::seconds(1);
    int tick = 0;
    while (true) {
      const bool stop = coplay::wait_until_or_signal(stop_signals, next);
      ++tick;
      {
        std::lock_guard<std::mutex> lock(mutex);
        std::string line = "t=" + std::to_string(tick) + "s";
        if (players.empty()) line += "  waiting for players";
        for (auto& [uid, s] : players) {
          if (s.gone && s.window_received == 0) continue;
          line += " | " + uid + ": " + std::to_string(s.window_received) + " fps, recv " +
                  std::to_string(s.received) + ", lost " + std::to_string(s.lost()) + ", ooo " +
                  std::to_string(s.out_of_order) + ", p50 " + fmt_ms(percentile(s.window_latency_ms, 0.5)) +
                  " ms, p99 " + fmt_ms(percentile(s.window_latency_ms, 0.99)) + " ms";
          s.window_received = 0;
          s.window_latency_ms.clear();
        }
        std::cout << line << std::endl;
      }
      if (stop || (seconds > 0 && std::chrono::steady_clock::now() - start >= std::chrono::duration<double>(seconds))) break;
      next += std::chrono::seconds(1);
    }

    std::lock_guard<std::mutex> lock(mutex);
    std::cout << "totals:" << std::endl;
    for (const auto& [uid, s] : players) {
      std::cout << "  " << uid << ": received " << s.received << ", lost " << s.lost() << ", out of order "
                << s.out_of_order << ", duplicates " << s.duplicates << ", latency p50 "
                << fmt_ms(percentile(s.all_latency_ms, 0.5)) << " ms, p99 " << fmt_ms(percentile(s.all_latency_ms, 0.99))
                << " ms, max " << fmt_ms(s.all_latency_ms.empty() ? 0 : *std::max_element(s.all_latency_ms.begin(), s.all_latency_ms.end()))
                << " ms" << std::endl;
    }
    if (bad_frames) std::cout << "  frames that were not coplay frames: " << bad_frames << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "coplay-host: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
