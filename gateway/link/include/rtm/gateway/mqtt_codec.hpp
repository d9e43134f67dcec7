#pragma once
// MQTT 3.1.1 packets for the gateway's own broker link: encoding into a byte buffer and
// incremental decoding from one. Pure, no I/O; only what a client with QoS 0/1 needs.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rtm::gateway::mqtt_codec {

enum class PacketType : std::uint8_t {
  connect = 1,
  connack = 2,
  publish = 3,
  puback = 4,
  pubrec = 5,
  pubrel = 6,
  pubcomp = 7,
  subscribe = 8,
  suback = 9,
  unsubscribe = 10,
  unsuback = 11,
  pingreq = 12,
  pingresp = 13,
  disconnect = 14,
};

struct ConnectOptions {
  std::string client_id;
  std::string username;
  std::string password;
  std::uint16_t keepalive_s = 30;
  bool clean_session = true;
  // The Will, when will_topic is not empty.
  std::string will_topic;
  std::string will_payload;
  int will_qos = 0;
  bool will_retain = false;
};

void append_connect(std::string& out, const ConnectOptions& options);
// Largest remaining length MQTT can encode (four bytes of 7 bits).
inline constexpr std::size_t kMaxRemainingLength = 268435455;

// false (and `out` unchanged) when the packet cannot be encoded: a topic over 65,535
// bytes or a packet over kMaxRemainingLength. Lengths are never cut to fit.
[[nodiscard]] bool append_publish(std::string& out, std::string_view topic,
                                  std::string_view payload, int qos, bool retain,
                                  std::uint16_t packet_id, bool dup = false);
void append_puback(std::string& out, std::uint16_t packet_id);
void append_subscribe(std::string& out, std::uint16_t packet_id,
                      const std::vector<std::pair<std::string, int>>& filters);
void append_unsubscribe(std::string& out, std::uint16_t packet_id,
                        const std::vector<std::string>& filters);
void append_pingreq(std::string& out);
void append_disconnect(std::string& out);

// One decoded packet. For PUBLISH, topic and payload view into the input buffer: valid
// until the buffer changes.
struct Packet {
  PacketType type;
  std::uint8_t flags = 0;        // low nibble of the fixed header
  std::uint16_t packet_id = 0;   // PUBLISH with QoS > 0, PUBACK, SUBACK, ...
  std::string_view topic;        // PUBLISH
  std::string_view payload;      // PUBLISH
  int qos = 0;                   // PUBLISH
  bool retain = false;           // PUBLISH
  std::uint8_t return_code = 0;  // CONNACK: 0 accepted; SUBACK: first granted QoS (0x80 refused)
  bool session_present = false;  // CONNACK: the broker kept the session of this client id
  std::size_t size = 0;          // bytes the packet took in the buffer
};

// ok: a packet; need_more: wait for more bytes; skip: a packet whose frame is known but
// that cannot be taken (over the size limit, bad content): `packet.size` bytes are to be
// read past, and for a PUBLISH its topic, QoS and packet id are set when they could be
// read; malformed: the stream cannot be framed any more (the connection must go).
enum class DecodeStatus { ok, need_more, skip, malformed };

struct DecodeResult {
  DecodeStatus status;
  Packet packet;
  std::string error;  // when skip or malformed
};

// Decodes the packet at the start of `buffer`. A packet larger than `max_packet_bytes` is
// `skip`, reported once its PUBLISH header (topic, packet id) is in the buffer.
DecodeResult decode(std::string_view buffer, std::size_t max_packet_bytes);

}  // namespace rtm::gateway::mqtt_codec
