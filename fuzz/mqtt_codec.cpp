// Fuzz target: the MQTT 3.1.1 decoder of the gateway's native broker link
// (gateway/link/src/mqtt_codec.cpp), fed what a broker (or anything on the socket) may send.
// Properties: no read outside the input (ASan, on an exactly sized copy); a decoded packet
// lies inside the input and inside the limit; a proper prefix of a packet needs more bytes;
// decoding does not depend on bytes after the packet; a decoded PUBLISH encodes back to
// the same packet.
//
// Input: a byte stream of packets, decoded one after another as the link does, with the
// link's size limit and with a small one.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "check.hpp"
#include "rtm/gateway/mqtt_codec.hpp"

namespace {

using namespace rtm::gateway::mqtt_codec;

constexpr std::size_t kLargeLimit = 268435455;  // the largest remaining length MQTT can carry
constexpr std::size_t kSmallLimit = 64;

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

bool same_packet(const Packet& a, const Packet& b) {
  return a.type == b.type && a.flags == b.flags && a.packet_id == b.packet_id &&
         a.topic == b.topic && a.payload == b.payload && a.qos == b.qos && a.retain == b.retain &&
         a.return_code == b.return_code && a.size == b.size;
}

std::size_t remaining_length_bytes(std::size_t length) {
  std::size_t bytes = 1;
  while (length >= 128) {
    length /= 128;
    ++bytes;
  }
  return bytes;
}

void check_publish(const Packet& p, std::string_view bytes) {
  RTM_FUZZ_CHECK(p.qos >= 0 && p.qos <= 2, "QoS 0..2");
  RTM_FUZZ_CHECK(inside(p.topic, bytes) && inside(p.payload, bytes), "views inside the packet");
  const std::size_t variable = 2 + p.topic.size() + (p.qos > 0 ? 2 : 0) + p.payload.size();
  const std::size_t header = 1 + remaining_length_bytes(variable);
  // A sender may spend more length bytes than needed; never fewer.
  RTM_FUZZ_CHECK(p.size >= header + variable && p.size <= 5 + variable,
                 "topic, packet id and payload fill the packet");

  std::string encoded;
  // A decoded PUBLISH fits the protocol's sizes, so it always encodes again.
  RTM_FUZZ_CHECK(append_publish(encoded, p.topic, p.payload, p.qos, p.retain, p.packet_id,
                                (p.flags & 0x08) != 0),
                 "a decoded PUBLISH encodes again");
  const DecodeResult again = decode(encoded, kLargeLimit);
  RTM_FUZZ_CHECK(again.status == DecodeStatus::ok, "a re-encoded PUBLISH decodes");
  const Packet& q = again.packet;
  RTM_FUZZ_CHECK(q.type == PacketType::publish && q.flags == p.flags && q.topic == p.topic &&
                     q.payload == p.payload && q.qos == p.qos && q.retain == p.retain &&
                     q.packet_id == p.packet_id && q.size == encoded.size(),
                 "a re-encoded PUBLISH is the same packet");
  if (p.size == header + variable) {
    RTM_FUZZ_CHECK(encoded == bytes.substr(0, p.size), "re-encoding gives the same bytes");
  }
}

void check_one(std::string_view buffer, std::size_t limit) {
  const DecodeResult r = decode(buffer, limit);
  switch (r.status) {
    case DecodeStatus::need_more:
      // Or, for a PUBLISH over the limit, while its header (topic, packet id: at most 65,539
      // bytes) is not in yet: the skip names the topic.
      RTM_FUZZ_CHECK(buffer.size() < 5 + limit ||
                         ((static_cast<std::uint8_t>(buffer[0]) >> 4) == 3 && buffer.size() < 5 + 65539),
                     "need_more only while a packet (or a skipped PUBLISH's header) can still fit");
      return;
    case DecodeStatus::malformed:
      RTM_FUZZ_CHECK(!r.error.empty(), "a malformed packet says why");
      return;
    case DecodeStatus::skip: {
      // A framed packet the gateway will not take: the link reads past exactly its size.
      const Packet& p = r.packet;
      RTM_FUZZ_CHECK(!r.error.empty(), "a skipped packet says why");
      RTM_FUZZ_CHECK(p.size >= 2, "a skipped packet has a frame");
      RTM_FUZZ_CHECK(p.size <= buffer.size() || p.size > limit,
                     "only a packet over the limit may reach past the input");
      RTM_FUZZ_CHECK(p.topic.empty() || (p.topic.data() >= buffer.data() &&
                                         p.topic.data() + p.topic.size() <= buffer.data() + buffer.size()),
                     "a skipped packet's topic lies inside the input");
      RTM_FUZZ_CHECK(static_cast<std::uint8_t>(p.type) == static_cast<std::uint8_t>(buffer[0]) >> 4,
                     "type comes from the first byte");
      return;
    }
    case DecodeStatus::ok:
      break;
  }
  const Packet& p = r.packet;
  RTM_FUZZ_CHECK(p.size >= 2 && p.size <= buffer.size(), "a packet lies inside the input");
  RTM_FUZZ_CHECK(p.size <= 5 + limit, "a packet lies inside the limit");
  RTM_FUZZ_CHECK(static_cast<std::uint8_t>(p.type) == static_cast<std::uint8_t>(buffer[0]) >> 4 &&
                     p.flags == (static_cast<std::uint8_t>(buffer[0]) & 0x0f),
                 "type and flags come from the first byte");

  // The packet alone, in a buffer of its own size, decodes the same: nothing after it read.
  const std::string_view alone = buffer.substr(0, p.size);
  auto copy = std::make_unique<char[]>(p.size);
  std::memcpy(copy.get(), alone.data(), p.size);
  const DecodeResult exact = decode(std::string_view(copy.get(), p.size), limit);
  RTM_FUZZ_CHECK(exact.status == DecodeStatus::ok, "the packet alone decodes");
  Packet shifted = exact.packet;
  if (!shifted.topic.empty()) {
    shifted.topic = alone.substr(static_cast<std::size_t>(exact.packet.topic.data() - copy.get()),
                                 exact.packet.topic.size());
  }
  if (!shifted.payload.empty()) {
    shifted.payload =
        alone.substr(static_cast<std::size_t>(exact.packet.payload.data() - copy.get()),
                     exact.packet.payload.size());
  }
  RTM_FUZZ_CHECK(same_packet(shifted, p), "the packet alone decodes the same");
  // Every proper prefix needs more bytes: the link must wait, not act on part of a packet.
  for (std::size_t cut : {p.size - 1, p.size / 2, std::size_t{1}}) {
    RTM_FUZZ_CHECK(decode(alone.substr(0, cut), limit).status == DecodeStatus::need_more,
                   "a proper prefix needs more");
  }
  if (p.type == PacketType::publish) check_publish(p, alone);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = rtm::fuzz::text(data, size);
  for (std::size_t limit : {kLargeLimit, kSmallLimit}) {
    std::string_view rest = input;
    while (!rest.empty()) {
      check_one(rest, limit);
      const DecodeResult r = decode(rest, limit);
      const bool framed = r.status == DecodeStatus::ok ||
                          (r.status == DecodeStatus::skip && r.packet.size <= rest.size());
      if (!framed) break;
      rest.remove_prefix(r.packet.size);
    }
  }
  // A packet under the small limit decodes the same under the large one.
  const DecodeResult small = decode(input, kSmallLimit);
  if (small.status == DecodeStatus::ok) {
    const DecodeResult large = decode(input, kLargeLimit);
    RTM_FUZZ_CHECK(large.status == DecodeStatus::ok && same_packet(small.packet, large.packet),
                   "a larger limit decodes the same packet");
  }
  return 0;
}
