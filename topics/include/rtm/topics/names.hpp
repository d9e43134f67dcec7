#pragma once
// Validation of RTM names (uid, channel, topic) and of MQTT topic names and filters.
// Byte positions in error messages ("at byte 3") are offsets counted from 0.
#include <optional>
#include <string>
#include <string_view>

namespace rtm::topics {

inline constexpr std::size_t kMaxNameBytes = 64;
inline constexpr std::size_t kMaxTopicBytes = 65535;
// Levels of the topics the gateway publishes: Mosquitto refuses more than 200 and drops
// the connection that sent them; this leaves room under that.
inline constexpr std::size_t kMaxPublishLevels = 128;

// uid, channel and topic names: 1–64 bytes of printable ASCII (0x21..0x7e) without
// '/', '+', '#', '$', '"', '\\' or '*' ('*' is a wildcard on AMQP-based brokers). Returns nullopt
// when valid, else a reason such as "must be 1-64 bytes, got 70" or "contains '/' at byte 3".
// `what` names the thing
// ("uid", "channel") at the start of the reason: "channel contains '/' at byte 3".
std::optional<std::string> name_error(std::string_view name, std::string_view what = "name");
inline bool is_valid_name(std::string_view name) { return !name_error(name).has_value(); }

// The broker the gateway runs beside (broker.profile). Each has its own rules on what a
// topic level may hold; `generic` takes the rules safe on all of them.
enum class BrokerProfile { mosquitto, emqx, rabbitmq, generic };
std::optional<BrokerProfile> parse_broker_profile(std::string_view text);
std::string_view broker_profile_name(BrokerProfile profile);

// What a broker adds to the name rules. RabbitMQ's MQTT plugin maps a topic's '/' to the
// AMQP routing key's '.' and back, so a '.' in a level comes out as a level separator: a
// channel "room.42" would publish on ".../room/42/...".
struct NameRules {
  bool dot_separates_levels = false;
  std::string_view why;  // the end of the refusal: which broker rule
};
NameRules name_rules_for(BrokerProfile profile);
// name_error, and then the broker's own rules.
std::optional<std::string> name_error(std::string_view name, std::string_view what,
                                      const NameRules& rules);
// A name pattern (name_matches): the name rules, but '*' allowed.
std::optional<std::string> name_pattern_error(std::string_view pattern,
                                              std::string_view what = "pattern");
// Does `name` match `pattern`, where '*' stands for any run of characters (also none) and
// '?' for one? Linear in the sizes, whatever the pattern.
bool name_matches(std::string_view pattern, std::string_view name);

// Well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF).
bool is_valid_utf8(std::string_view text);
// Offset of the first byte of the first ill-formed UTF-8 sequence, or nullopt when valid.
std::optional<std::size_t> utf8_error_offset(std::string_view text);

// `text` with every ill-formed UTF-8 sequence replaced by U+FFFD, so that it can be put
// into JSON or a log line whatever a client sent.
std::string to_valid_utf8(std::string_view text);

// MQTT 3.1.1 topic name: 1..65535 bytes, valid UTF-8, no U+0000, no '+' or '#'.
std::optional<std::string> topic_name_error(std::string_view topic);
// A topic name a broker takes from the gateway: a topic name with at most
// kMaxPublishLevels levels.
std::optional<std::string> publish_topic_error(std::string_view topic);
// Levels of a topic or filter ("a/b" has 2).
std::size_t level_count(std::string_view topic);
// MQTT 3.1.1 topic filter: as a name, but '+' must fill a whole level and '#' must be
// the whole last level.
std::optional<std::string> topic_filter_error(std::string_view filter);

// MQTT matching of a (valid) filter against a (valid) topic name, including the rule
// that a filter starting with a wildcard does not match a topic starting with '$'.
bool filter_matches(std::string_view filter, std::string_view topic);

}  // namespace rtm::topics
