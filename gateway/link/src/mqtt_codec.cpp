#include "rtm/gateway/mqtt_codec.hpp"

namespace rtm::gateway::mqtt_codec {
namespace {

void append_u16(std::string& out, std::uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

void append_string(std::string& out, std::string_view s) {
  append_u16(out, static_cast<std::uint16_t>(s.size()));
  out.append(s.data(), s.size());
}

void append_remaining_length(std::string& out, std::size_t length) {
  do {
    auto byte = static_cast<std::uint8_t>(length % 128);
    length /= 128;
    if (length > 0) byte |= 0x80;
    out += static_cast<char>(byte);
  } while (length > 0);
}

void append_header(std::string& out, PacketType type, std::uint8_t flags, std::size_t length) {
  out += static_cast<char>((static_cast<std::uint8_t>(type) << 4) | flags);
  append_remaining_length(out, length);
}

std::uint16_t read_u16(std::string_view s, std::size_t at) {
  return static_cast<std::uint16_t>((static_cast<std::uint8_t>(s[at]) << 8) |
                                    static_cast<std::uint8_t>(s[at + 1]));
}

DecodeResult malformed(std::string why) { return {DecodeStatus::malformed, {}, std::move(why)}; }

DecodeResult skip(Packet p, std::string why) { return {DecodeStatus::skip, p, std::move(why)}; }

// The PUBLISH header (topic, packet id) of a packet with `body` (possibly incomplete) into
// `p`; false when the body is too short for it.
bool read_publish_header(std::string_view body, Packet& p) {
  p.qos = (p.flags >> 1) & 3;
  p.retain = (p.flags & 1) != 0;
  if (body.size() < 2) return false;
  const std::size_t topic_len = read_u16(body, 0);
  const std::size_t end = 2 + topic_len + (p.qos > 0 ? 2 : 0);
  if (body.size() < end) return false;
  p.topic = body.substr(2, topic_len);
  if (p.qos > 0) p.packet_id = read_u16(body, 2 + topic_len);
  return true;
}

}  // namespace

void append_connect(std::string& out, const ConnectOptions& o) {
  std::uint8_t flags = o.clean_session ? 0x02 : 0x00;
  std::size_t length = 10 + 2 + o.client_id.size();
  if (!o.username.empty()) {
    flags |= 0x80;
    length += 2 + o.username.size();
  }
  if (!o.password.empty()) {
    flags |= 0x40;
    length += 2 + o.password.size();
  }
  if (!o.will_topic.empty()) {
    flags |= static_cast<std::uint8_t>(0x04 | ((o.will_qos & 3) << 3) | (o.will_retain ? 0x20 : 0));
    length += 2 + o.will_topic.size() + 2 + o.will_payload.size();
  }
  append_header(out, PacketType::connect, 0, length);
  append_string(out, "MQTT");
  out += static_cast<char>(4);  // protocol level 3.1.1
  out += static_cast<char>(flags);
  append_u16(out, o.keepalive_s);
  append_string(out, o.client_id);
  if (!o.will_topic.empty()) {
    append_string(out, o.will_topic);
    append_string(out, o.will_payload);
  }
  if (!o.username.empty()) append_string(out, o.username);
  if (!o.password.empty()) append_string(out, o.password);
}

bool append_publish(std::string& out, std::string_view topic, std::string_view payload, int qos,
                    bool retain, std::uint16_t packet_id, bool dup) {
  const std::uint8_t flags = static_cast<std::uint8_t>((dup ? 0x08 : 0) | ((qos & 3) << 1) |
                                                       (retain ? 0x01 : 0));
  const std::size_t length = 2 + topic.size() + (qos > 0 ? 2 : 0) + payload.size();
  if (topic.size() > 65535 || length > kMaxRemainingLength) return false;
  out.reserve(out.size() + length + 5);
  append_header(out, PacketType::publish, flags, length);
  append_string(out, topic);
  if (qos > 0) append_u16(out, packet_id);
  out.append(payload.data(), payload.size());
  return true;
}

void append_puback(std::string& out, std::uint16_t packet_id) {
  append_header(out, PacketType::puback, 0, 2);
  append_u16(out, packet_id);
}

void append_subscribe(std::string& out, std::uint16_t packet_id,
                      const std::vector<std::pair<std::string, int>>& filters) {
  std::size_t length = 2;
  for (const auto& f : filters) length += 2 + f.first.size() + 1;
  append_header(out, PacketType::subscribe, 0x02, length);
  append_u16(out, packet_id);
  for (const auto& f : filters) {
    append_string(out, f.first);
    out += static_cast<char>(f.second);
  }
}

void append_unsubscribe(std::string& out, std::uint16_t packet_id,
                        const std::vector<std::string>& filters) {
  std::size_t length = 2;
  for (const auto& f : filters) length += 2 + f.size();
  append_header(out, PacketType::unsubscribe, 0x02, length);
  append_u16(out, packet_id);
  for (const auto& f : filters) append_string(out, f);
}

void append_pingreq(std::string& out) { append_header(out, PacketType::pingreq, 0, 0); }
void append_disconnect(std::string& out) { append_header(out, PacketType::disconnect, 0, 0); }

DecodeResult decode(std::string_view buf, std::size_t max_packet_bytes) {
  if (buf.size() < 2) return {DecodeStatus::need_more, {}, {}};
  std::size_t length = 0;
  std::size_t multiplier = 1;
  std::size_t at = 1;
  while (true) {
    if (at >= buf.size()) return {DecodeStatus::need_more, {}, {}};
    if (at > 4) return malformed("remaining length longer than 4 bytes");
    const auto byte = static_cast<std::uint8_t>(buf[at++]);
    length += (byte & 0x7f) * multiplier;
    multiplier *= 128;
    if ((byte & 0x80) == 0) break;
  }
  const auto first = static_cast<std::uint8_t>(buf[0]);
  const auto type = static_cast<PacketType>(first >> 4);
  DecodeResult r{DecodeStatus::ok, {}, {}};
  Packet& p = r.packet;
  p.type = type;
  p.flags = first & 0x0f;
  p.size = at + length;
  if (length > max_packet_bytes) {
    const std::string why = "packet of " + std::to_string(length) + " bytes is over the limit of " +
                            std::to_string(max_packet_bytes);
    if (type == PacketType::publish && !read_publish_header(buf.substr(at), p)) {
      // Wait for the header (at most 65,541 bytes) so that the skip can name the topic.
      const std::size_t available = buf.size() - at;
      if (available < 2 + 65535 + 2 && available < length) return {DecodeStatus::need_more, {}, {}};
    }
    return skip(p, why);
  }
  if (buf.size() < at + length) return {DecodeStatus::need_more, {}, {}};
  const std::string_view body = buf.substr(at, length);
  switch (type) {
    case PacketType::connack:
      if (body.size() != 2) return skip(p, "CONNACK of " + std::to_string(body.size()) + " bytes");
      p.return_code = static_cast<std::uint8_t>(body[1]);
      p.session_present = (static_cast<std::uint8_t>(body[0]) & 0x01) != 0;
      break;
    case PacketType::publish: {
      if (p.qos == 3 || ((p.flags >> 1) & 3) == 3) return skip(p, "PUBLISH with QoS 3");
      if (!read_publish_header(body, p)) return skip(p, "PUBLISH shorter than its topic");
      const std::size_t header = 2 + p.topic.size() + (p.qos > 0 ? 2 : 0);
      p.payload = body.substr(header);
      break;
    }
    case PacketType::puback:
    case PacketType::pubrec:
    case PacketType::pubrel:
    case PacketType::pubcomp:
    case PacketType::unsuback:
      if (body.size() < 2) return skip(p, "acknowledgement without a packet id");
      p.packet_id = read_u16(body, 0);
      break;
    case PacketType::suback:
      if (body.size() < 3) return skip(p, "SUBACK without return codes");
      p.packet_id = read_u16(body, 0);
      p.return_code = static_cast<std::uint8_t>(body[2]);
      break;
    case PacketType::pingresp:
      break;
    default:
      return skip(p, "unexpected packet type " + std::to_string(first >> 4) + " from the broker");
  }
  return r;
}

}  // namespace rtm::gateway::mqtt_codec
