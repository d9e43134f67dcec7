#include "rtm/topics/names.hpp"

#include "rtm/topics/levels.hpp"

#include <cstdio>

namespace rtm::topics {
namespace {

std::string hex_byte(unsigned char byte) {
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "0x%02x", static_cast<unsigned>(byte));
  return buffer;
}

std::string at_byte(std::size_t offset) {
  return " at byte " + std::to_string(offset);
}

bool is_continuation(unsigned char byte) {
  return (byte & 0xC0) == 0x80;
}

// The checks shared by topic names and filters: length, UTF-8, U+0000.
std::optional<std::string> common_topic_error(std::string_view topic, std::string_view what) {
  if (topic.empty()) return std::string(what) + " is empty";
  if (topic.size() > kMaxTopicBytes) {
    return std::string(what) + " must be at most " + std::to_string(kMaxTopicBytes) +
           " bytes, got " + std::to_string(topic.size());
  }
  if (auto bad = utf8_error_offset(topic)) {
    return std::string(what) + " is not valid UTF-8" + at_byte(*bad);
  }
  const std::size_t nul = topic.find('\0');
  if (nul != std::string_view::npos) return std::string(what) + " contains U+0000" + at_byte(nul);
  return std::nullopt;
}

}  // namespace

namespace {

// The name rules; `pattern` also takes '*' (a channels.public_presence pattern).
std::optional<std::string> check_name(std::string_view name, std::string_view what, bool pattern) {
  const std::string subject(what);
  if (name.empty() || name.size() > kMaxNameBytes) {
    return subject + " must be 1-" + std::to_string(kMaxNameBytes) + " bytes, got " +
           std::to_string(name.size());
  }
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto byte = static_cast<unsigned char>(name[i]);
    switch (byte) {
      case '/':
      case '+':
      case '#':
      case '$':
      case '"':
      case '\\':
        return subject + " contains '" + static_cast<char>(byte) + "'" + at_byte(i);
      case ' ':
        return subject + " contains a space" + at_byte(i);
      case '*':
        if (pattern) break;
        // RabbitMQ's MQTT plugin turns '*' into an AMQP one-level wildcard: a channel "*"
        // would read every channel's data there.
        return subject + " contains '*'" + at_byte(i) +
               " (a wildcard on AMQP-based brokers such as RabbitMQ)";
      default:
        break;
    }
    if (byte < 0x20 || byte == 0x7F) {
      return subject + " contains control character " + hex_byte(byte) + at_byte(i);
    }
    if (byte > 0x7F) {
      return subject + " contains non-ASCII byte " + hex_byte(byte) + at_byte(i) +
             " (names are printable ASCII)";
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> name_error(std::string_view name, std::string_view what) {
  return check_name(name, what, false);
}

std::optional<std::string> name_pattern_error(std::string_view pattern, std::string_view what) {
  return check_name(pattern, what, true);
}

std::optional<BrokerProfile> parse_broker_profile(std::string_view text) {
  for (auto profile : {BrokerProfile::mosquitto, BrokerProfile::emqx, BrokerProfile::rabbitmq,
                       BrokerProfile::generic}) {
    if (text == broker_profile_name(profile)) return profile;
  }
  return std::nullopt;
}

std::string_view broker_profile_name(BrokerProfile profile) {
  switch (profile) {
    case BrokerProfile::mosquitto:
      return "mosquitto";
    case BrokerProfile::emqx:
      return "emqx";
    case BrokerProfile::rabbitmq:
      return "rabbitmq";
    case BrokerProfile::generic:
      return "generic";
  }
  return "generic";
}

NameRules name_rules_for(BrokerProfile profile) {
  switch (profile) {
    case BrokerProfile::rabbitmq:
      return {true,
              "broker.profile is rabbitmq: RabbitMQ turns '.' in a topic into a level "
              "separator"};
    case BrokerProfile::generic:
      return {true,
              "broker.profile is generic: RabbitMQ turns '.' in a topic into a level "
              "separator"};
    case BrokerProfile::mosquitto:
    case BrokerProfile::emqx:
      return {};
  }
  return {};
}

std::optional<std::string> name_error(std::string_view name, std::string_view what,
                                      const NameRules& rules) {
  if (auto why = check_name(name, what, false)) {
    // A '.' the client sent in a request topic reaches the gateway as '/' on such brokers.
    if (rules.dot_separates_levels && name.find('/') != std::string_view::npos) {
      *why += " (" + std::string(rules.why) + ", and names may not hold '.')";
    }
    return why;
  }
  if (rules.dot_separates_levels) {
    if (const auto dot = name.find('.'); dot != std::string_view::npos) {
      return std::string(what) + " contains '.'" + at_byte(dot) + " (" + std::string(rules.why) +
             ")";
    }
  }
  return std::nullopt;
}

// Table 3-7 of the Unicode standard ("Well-Formed UTF-8 Byte Sequences"): the second byte's
// range depends on the first, which is what excludes overlong forms, surrogates and
// code points above U+10FFFF.
std::optional<std::size_t> utf8_error_offset(std::string_view text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t size = text.size();
  std::size_t i = 0;
  while (i < size) {
    const unsigned char lead = bytes[i];
    if (lead < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    unsigned char second_low = 0x80;
    unsigned char second_high = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) second_low = 0xA0;   // overlong below U+0800
      if (lead == 0xED) second_high = 0x9F;  // surrogates U+D800..U+DFFF
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) second_low = 0x90;   // overlong below U+10000
      if (lead == 0xF4) second_high = 0x8F;  // above U+10FFFF
    } else {
      return i;  // 0x80..0xC1 (stray continuation, overlong 2-byte) and 0xF5..0xFF
    }
    if (size - i < length) return i;
    if (bytes[i + 1] < second_low || bytes[i + 1] > second_high) return i;
    for (std::size_t k = 2; k < length; ++k) {
      if (!is_continuation(bytes[i + k])) return i;
    }
    i += length;
  }
  return std::nullopt;
}

bool is_valid_utf8(std::string_view text) {
  return !utf8_error_offset(text).has_value();
}

std::optional<std::string> topic_name_error(std::string_view topic) {
  if (auto error = common_topic_error(topic, "topic name")) return error;
  const std::size_t wildcard = topic.find_first_of("+#");
  if (wildcard != std::string_view::npos) {
    return std::string("topic name contains '") + topic[wildcard] + "'" + at_byte(wildcard) +
           " (wildcards are only allowed in filters)";
  }
  return std::nullopt;
}

std::size_t level_count(std::string_view topic) {
  std::size_t levels = 1;
  for (char c : topic) levels += c == '/';
  return levels;
}

std::optional<std::string> publish_topic_error(std::string_view topic) {
  if (auto error = topic_name_error(topic)) return error;
  const auto levels = level_count(topic);
  if (levels > kMaxPublishLevels) {
    return "topic name has " + std::to_string(levels) + " levels, over the " +
           std::to_string(kMaxPublishLevels) + " a broker takes";
  }
  return std::nullopt;
}

std::string to_valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const auto bad = utf8_error_offset(text);
    if (!bad) {
      out.append(text);
      break;
    }
    out.append(text.substr(0, *bad));
    out += "\xEF\xBF\xBD";
    text.remove_prefix(*bad + 1);  // one byte at a time: the next may start a good sequence
  }
  return out;
}

std::optional<std::string> topic_filter_error(std::string_view filter) {
  if (auto error = common_topic_error(filter, "topic filter")) return error;
  std::size_t level_start = 0;
  for (std::size_t i = 0; i <= filter.size(); ++i) {
    if (i < filter.size() && filter[i] != '/') continue;
    const std::string_view level = filter.substr(level_start, i - level_start);
    const std::size_t wildcard = level.find_first_of("+#");
    if (wildcard != std::string_view::npos) {
      const std::size_t offset = level_start + wildcard;
      if (level.size() != 1) {
        return std::string("topic filter has '") + level[wildcard] + "'" + at_byte(offset) +
               " that does not fill its whole level";
      }
      if (level[0] == '#' && i != filter.size()) {
        return "topic filter has '#'" + at_byte(offset) + " that is not the last level";
      }
    }
    level_start = i + 1;
  }
  return std::nullopt;
}

bool filter_matches(std::string_view filter, std::string_view topic) {
  // MQTT 3.1.1 §4.7.2: topics starting with '$' are not matched by a leading wildcard.
  if (!topic.empty() && topic.front() == '$' && !filter.empty() &&
      (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  LevelCursor filter_levels(filter);
  LevelCursor topic_levels(topic);
  while (!filter_levels.done()) {
    const std::string_view wanted = filter_levels.next();
    if (wanted == "#") return true;  // also matches the parent level: "a/#" matches "a"
    if (topic_levels.done()) return false;
    const std::string_view level = topic_levels.next();
    if (wanted != "+" && wanted != level) return false;
  }
  return topic_levels.done();
}

bool name_matches(std::string_view pattern, std::string_view name) {
  // Greedy with one back-track point: the last '*' seen and where it resumed.
  std::size_t p = 0, n = 0, star = std::string_view::npos, resume = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = n;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace rtm::topics
