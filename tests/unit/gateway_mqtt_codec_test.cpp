// The gateway's own MQTT 3.1.1 codec (native broker link): bytes checked against the
// spec's layouts, and decoding that never reads past what it was given.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "rtm/gateway/mqtt_codec.hpp"

using namespace rtm::gateway::mqtt_codec;

namespace {
std::string bytes(std::initializer_list<int> list) {
  std::string s;
  for (int b : list) s += static_cast<char>(b);
  return s;
}
}  // namespace

ConnectOptions options(std::string id, std::string user, std::string password,
                       std::uint16_t keepalive, bool clean) {
  ConnectOptions o;
  o.client_id = std::move(id);
  o.username = std::move(user);
  o.password = std::move(password);
  o.keepalive_s = keepalive;
  o.clean_session = clean;
  return o;
}

TEST_CASE("mqtt codec: CONNECT carries level 4, flags, keep-alive, id, user and password") {
  std::string out;
  append_connect(out, options("gw", "u", "p", 30, true));
  CHECK(out == bytes({0x10, 20, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 30, 0, 2, 'g', 'w', 0, 1,
                      'u', 0, 1, 'p'}));
  std::string anonymous;
  append_connect(anonymous, options("gw", "", "", 60, false));
  CHECK(anonymous == bytes({0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 60, 0, 2, 'g', 'w'}));
}

TEST_CASE("mqtt codec: CONNECT with a Will puts topic and message before the user") {
  auto o = options("gw", "u", "", 30, false);
  o.will_topic = "s";
  o.will_payload = "off";
  o.will_qos = 1;
  o.will_retain = true;
  std::string out;
  append_connect(out, o);
  // flags: user 0x80, will retain 0x20, will QoS 1 0x08, will 0x04; clean session off
  CHECK(out == bytes({0x10, 25, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xAC, 0, 30, 0, 2, 'g', 'w', 0, 1,
                      's', 0, 3, 'o', 'f', 'f', 0, 1, 'u'}));
}

TEST_CASE("mqtt codec: CONNACK tells whether the broker kept the session") {
  auto kept = decode(bytes({0x20, 2, 1, 0}), 100);
  REQUIRE(kept.status == DecodeStatus::ok);
  CHECK(kept.packet.session_present);
  CHECK(kept.packet.return_code == 0);
  auto fresh = decode(bytes({0x20, 2, 0, 0}), 100);
  REQUIRE(fresh.status == DecodeStatus::ok);
  CHECK_FALSE(fresh.packet.session_present);
}

TEST_CASE("mqtt codec: PUBLISH at QoS 0 and 1 round-trips through decode") {
  struct Case {
    std::string topic, payload;
    int qos;
    bool retain;
    std::uint16_t id;
  } cases[] = {
      {"a/b", "hello", 0, false, 0},
      {"rtm/ch/room-42/input/p2", std::string("\0\xff\x01", 3), 1, false, 7},
      {"t", "", 1, true, 65535},
      {"big", std::string(200000, 'x'), 0, false, 0},  // 3-byte remaining length
  };
  for (const auto& c : cases) {
    CAPTURE(c.topic);
    std::string out;
    REQUIRE(append_publish(out, c.topic, c.payload, c.qos, c.retain, c.id));
    auto r = decode(out, 1 << 20);
    REQUIRE(r.status == DecodeStatus::ok);
    CHECK(r.packet.type == PacketType::publish);
    CHECK(r.packet.topic == c.topic);
    CHECK(r.packet.payload == c.payload);
    CHECK(r.packet.qos == c.qos);
    CHECK(r.packet.retain == c.retain);
    if (c.qos > 0) CHECK(r.packet.packet_id == c.id);
    CHECK(r.packet.size == out.size());
    // Every proper prefix needs more bytes, never decodes wrongly.
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, out.size() / 2, out.size() - 1}) {
      CHECK(decode(std::string_view(out).substr(0, n), 1 << 20).status == DecodeStatus::need_more);
    }
  }
}

TEST_CASE("mqtt codec: SUBSCRIBE, PUBACK, PINGREQ and DISCONNECT bytes") {
  std::string sub;
  append_subscribe(sub, 10, {{"rtm/req/+/#", 1}});
  CHECK(sub == bytes({0x82, 16, 0, 10, 0, 11, 'r', 't', 'm', '/', 'r', 'e', 'q', '/', '+', '/',
                      '#', 1}));
  std::string ack;
  append_puback(ack, 0x1234);
  CHECK(ack == bytes({0x40, 2, 0x12, 0x34}));
  std::string ping;
  append_pingreq(ping);
  CHECK(ping == bytes({0xC0, 0}));
  std::string bye;
  append_disconnect(bye);
  CHECK(bye == bytes({0xE0, 0}));
}

TEST_CASE("mqtt codec: CONNACK, SUBACK, PUBACK and PINGRESP decode") {
  auto connack = decode(bytes({0x20, 2, 0, 5}), 100);
  REQUIRE(connack.status == DecodeStatus::ok);
  CHECK(connack.packet.type == PacketType::connack);
  CHECK(connack.packet.return_code == 5);
  auto suback = decode(bytes({0x90, 3, 0, 10, 0x80}), 100);
  REQUIRE(suback.status == DecodeStatus::ok);
  CHECK(suback.packet.packet_id == 10);
  CHECK(suback.packet.return_code == 0x80);
  auto puback = decode(bytes({0x40, 2, 0xAB, 0xCD}), 100);
  REQUIRE(puback.status == DecodeStatus::ok);
  CHECK(puback.packet.packet_id == 0xABCD);
  CHECK(decode(bytes({0xD0, 0}), 100).packet.type == PacketType::pingresp);
}

TEST_CASE("mqtt codec: a framed packet it cannot take is skipped whole, never read past") {
  struct Case {
    std::string what, input;
  } cases[] = {
      {"CONNACK of 3 bytes", bytes({0x20, 3, 0, 0, 0})},
      {"PUBLISH with QoS 3", bytes({0x36, 4, 0, 1, 'a', 'b'})},
      {"PUBLISH topic longer than the packet", bytes({0x30, 3, 0, 9, 'a'})},
      {"PUBLISH QoS 1 without packet id", bytes({0x32, 3, 0, 1, 'a'})},
      {"SUBACK without codes", bytes({0x90, 2, 0, 1})},
      {"CONNECT from the broker", bytes({0x10, 0})},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    auto r = decode(c.input + "next", 1 << 20);
    CHECK(r.status == DecodeStatus::skip);
    CHECK(r.packet.size == c.input.size());  // the next packet starts right after
    CHECK_FALSE(r.error.empty());
  }
  // Only a stream that cannot be framed any more is malformed.
  auto r = decode(bytes({0x30, 0xff, 0xff, 0xff, 0xff, 0x01}), 1 << 20);
  CHECK(r.status == DecodeStatus::malformed);
}

TEST_CASE("mqtt codec: a PUBLISH over the limit is skipped with its topic and packet id") {
  std::string big;
  REQUIRE(append_publish(big, "rtm/presence/mallory", std::string(5000, 'x'), 1, true, 0x1234));
  // Known as soon as the header is in, before the rest of the payload arrives.
  auto r = decode(std::string_view(big).substr(0, 40), 1000);
  REQUIRE(r.status == DecodeStatus::skip);
  CHECK(r.packet.size == big.size());
  CHECK(r.packet.topic == "rtm/presence/mallory");
  CHECK(r.packet.qos == 1);
  CHECK(r.packet.retain);
  CHECK(r.packet.packet_id == 0x1234);
  CHECK(r.error.find("over the limit of 1000") != std::string::npos);
  // Three bytes of it: wait for the header.
  CHECK(decode(std::string_view(big).substr(0, 3), 1000).status == DecodeStatus::need_more);
}

TEST_CASE("mqtt codec: lengths that do not fit are refused, never cut") {
  std::string out = "keep";
  CHECK_FALSE(append_publish(out, std::string(65536, 't'), "x", 0, false, 0));
  CHECK(out == "keep");
  CHECK(append_publish(out, std::string(65535, 't'), "x", 0, false, 0));
  auto r = decode(std::string_view(out).substr(4), 1 << 20);
  REQUIRE(r.status == DecodeStatus::ok);
  CHECK(r.packet.topic.size() == 65535);
}

TEST_CASE("mqtt codec: random bytes decode to ok or need_more or skip or malformed within bounds") {
  std::mt19937 rng(7);
  for (int i = 0; i < 100000; ++i) {
    std::string input(rng() % 24, '\0');
    for (auto& c : input) c = static_cast<char>(rng());
    auto r = decode(input, 1 << 16);
    if (r.status == DecodeStatus::ok || r.status == DecodeStatus::skip) {
      if (r.status == DecodeStatus::ok) REQUIRE(r.packet.size <= input.size());
      REQUIRE(r.packet.topic.size() + r.packet.payload.size() <= input.size());
    }
  }
}
