// Fuzz target: names, MQTT topic names and filters, URI references and the topic tree
// (topics/). Each function is checked against a plain reference of its documented rule,
// and what it builds must parse back to what it was built from.
//
// Input: the whole input is a URI reference, a text to percent-decode and a topic for the
// tree; its first line and the rest are also a name / topic / filter pair.
#include <cstdint>
#include <string>
#include <vector>

#include "check.hpp"
#include "rtm/topics/names.hpp"
#include "rtm/topics/tree.hpp"
#include "rtm/topics/uri.hpp"

namespace {

using namespace rtm::topics;

// UTF-8 decoded by bit patterns, then checked for overlong forms, surrogates and range:
// the same language as Table 3-7 of the Unicode standard, written differently.
bool reference_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    std::uint32_t point = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if ((lead & 0xE0) == 0xC0) {
      length = 2;
      point = lead & 0x1F;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3;
      point = lead & 0x0F;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4;
      point = lead & 0x07;
    } else {
      return false;
    }
    if (text.size() - i < length) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto byte = static_cast<unsigned char>(text[i + k]);
      if ((byte & 0xC0) != 0x80) return false;
      point = (point << 6) | (byte & 0x3F);
    }
    const std::uint32_t minimum = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000;
    if (point < minimum || point > 0x10FFFF || (point >= 0xD800 && point <= 0xDFFF)) return false;
    i += length;
  }
  return true;
}

bool reference_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x21 || byte > 0x7E) return false;
    if (std::string_view("/+#$\"\\*").find(c) != std::string_view::npos) return false;
  }
  return true;
}

std::vector<std::string_view> levels(std::string_view topic) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = topic.find('/', start);
    if (slash == std::string_view::npos) {
      out.push_back(topic.substr(start));
      return out;
    }
    out.push_back(topic.substr(start, slash - start));
    start = slash + 1;
  }
}

bool reference_topic_common(std::string_view topic) {
  return !topic.empty() && topic.size() <= 65535 && reference_utf8(topic) &&
         topic.find('\0') == std::string_view::npos;
}

bool reference_topic_name(std::string_view topic) {
  return reference_topic_common(topic) && topic.find_first_of("+#") == std::string_view::npos;
}

bool reference_topic_filter(std::string_view filter) {
  if (!reference_topic_common(filter)) return false;
  const auto parts = levels(filter);
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].find_first_of("+#") == std::string_view::npos) continue;
    if (parts[i] == "+") continue;
    if (parts[i] == "#" && i + 1 == parts.size()) continue;
    return false;
  }
  return true;
}

// MQTT 3.1.1 §4.7 matching over split levels.
bool reference_matches(std::string_view filter, std::string_view topic) {
  if (!topic.empty() && topic.front() == '$' && (filter.front() == '+' || filter.front() == '#')) {
    return false;
  }
  const auto f = levels(filter);
  const auto t = levels(topic);
  for (std::size_t i = 0; i < f.size(); ++i) {
    if (f[i] == "#") return true;  // also the parent level: "a/#" matches "a"
    if (i >= t.size()) return false;
    if (f[i] != "+" && f[i] != t[i]) return false;
  }
  return f.size() == t.size();
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::string percent_encode_all(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    out += '%';
    out += kHex[byte >> 4];
    out += kHex[byte & 0x0F];
  }
  return out;
}

void check_names(std::string_view first, std::string_view rest) {
  for (std::string_view text : {first, rest}) {
    const auto name = name_error(text, "uid");
    RTM_FUZZ_CHECK(name.has_value() != reference_name(text), "name_error disagrees with the rule");
    if (name) {
      RTM_FUZZ_CHECK(reference_utf8(*name) && name->rfind("uid ", 0) == 0,
                     "a name error is valid UTF-8 and starts with what it names");
    }
    // Under RabbitMQ's rules a name is the general rule without '.'.
    const auto rabbit =
        name_error(text, "uid", rtm::topics::name_rules_for(rtm::topics::BrokerProfile::rabbitmq));
    RTM_FUZZ_CHECK(
        rabbit.has_value() != (reference_name(text) && text.find('.') == std::string_view::npos),
        "name_error with the rabbitmq rules disagrees with the rule");
    if (rabbit) RTM_FUZZ_CHECK(reference_utf8(*rabbit), "a rabbitmq name error is valid UTF-8");
    const auto mosquitto =
        name_error(text, "uid", rtm::topics::name_rules_for(rtm::topics::BrokerProfile::mosquitto));
    RTM_FUZZ_CHECK(mosquitto == name, "the mosquitto rules are the general rule");
    const auto topic = topic_name_error(text);
    RTM_FUZZ_CHECK(topic.has_value() != reference_topic_name(text),
                   "topic_name_error disagrees with MQTT 3.1.1");
    const auto filter = topic_filter_error(text);
    RTM_FUZZ_CHECK(filter.has_value() != reference_topic_filter(text),
                   "topic_filter_error disagrees with MQTT 3.1.1");
    if (topic) RTM_FUZZ_CHECK(reference_utf8(*topic), "a topic error is valid UTF-8");
    if (filter) RTM_FUZZ_CHECK(reference_utf8(*filter), "a filter error is valid UTF-8");
    if (!topic) {
      RTM_FUZZ_CHECK(!filter, "every topic name is a filter");
      RTM_FUZZ_CHECK(filter_matches(text, text), "a topic name matches itself as a filter");
    }
  }
  if (reference_topic_filter(first) && reference_topic_name(rest)) {
    RTM_FUZZ_CHECK(filter_matches(first, rest) == reference_matches(first, rest),
                   "filter_matches disagrees with MQTT 3.1.1");
  }
}

void check_uri(std::string_view input) {
  const auto uri = parse_uri(input);
  if (!uri) {
    const std::string& message = uri.error().message;
    RTM_FUZZ_CHECK(!message.empty(), "a URI error says why");
    // The message goes into the error answer, a JSON string.
    RTM_FUZZ_CHECK(reference_utf8(message), "a URI error is valid UTF-8");
    // Client text is quoted cut short, so that a 60 KB reference does not make a 60 KB answer.
    RTM_FUZZ_CHECK(message.size() <= 512, "a URI error is bounded");
    return;
  }
  RTM_FUZZ_CHECK(uri->raw == input, "raw is the reference as received");
  RTM_FUZZ_CHECK(reference_utf8(input), "an accepted URI is valid UTF-8");
  RTM_FUZZ_CHECK(input.find('\0') == std::string_view::npos, "an accepted URI has no NUL");
  RTM_FUZZ_CHECK(input.find('#') == std::string_view::npos, "an accepted URI has no fragment");
  for (std::size_t i = input.find('%'); i != std::string_view::npos; i = input.find('%', i + 1)) {
    RTM_FUZZ_CHECK(i + 2 < input.size() && is_hex(input[i + 1]) && is_hex(input[i + 2]),
                   "every '%' of an accepted URI starts an escape");
  }
  if (uri->absolute) {
    RTM_FUZZ_CHECK(!uri->scheme.empty() && !uri->host.empty(),
                   "an absolute URI has scheme and host");
    for (char c : uri->scheme) {
      RTM_FUZZ_CHECK(!(c >= 'A' && c <= 'Z'), "the scheme is lower-cased");
    }
    for (char c : uri->host) {
      RTM_FUZZ_CHECK(!(c >= 'A' && c <= 'Z'), "the host is lower-cased");
    }
    if (uri->port) RTM_FUZZ_CHECK(*uri->port >= 1 && *uri->port <= 65535, "port in range");
  } else {
    RTM_FUZZ_CHECK(uri->scheme.empty() && uri->host.empty() && !uri->port,
                   "a relative URI has no scheme, host or port");
    RTM_FUZZ_CHECK(!uri->path.empty(), "a relative URI names an operation");
  }
  RTM_FUZZ_CHECK(reference_utf8(uri->path), "the decoded path is valid UTF-8");
  RTM_FUZZ_CHECK(uri->path.find('\0') == std::string::npos, "the decoded path has no NUL");
  for (std::size_t i = 0; i < uri->params.size(); ++i) {
    const QueryParam& p = uri->params[i];
    RTM_FUZZ_CHECK(!p.key.empty(), "query keys are not empty");
    for (const std::string* s : {&p.key, &p.value}) {
      RTM_FUZZ_CHECK(reference_utf8(*s) && s->find('\0') == std::string::npos,
                     "decoded query text is valid UTF-8 without NUL");
    }
    for (std::size_t j = 0; j < i; ++j) {
      RTM_FUZZ_CHECK(uri->params[j].key != p.key, "query keys are unique");
    }
  }
  const std::string* msg_id = uri->param("msg_id");
  RTM_FUZZ_CHECK(uri->msg_id == (msg_id ? *msg_id : std::string()),
                 "msg_id is the decoded msg_id parameter");
  const std::size_t question = input.find('?');
  RTM_FUZZ_CHECK(uri->query == (question == std::string_view::npos ? std::string_view()
                                                                   : input.substr(question + 1)),
                 "query is the raw text after the first '?'");
}

void check_percent_decode(std::string_view input) {
  const auto decoded = percent_decode(input);
  if (!decoded) {
    RTM_FUZZ_CHECK(reference_utf8(decoded.error().message), "a decode error is valid UTF-8");
    return;
  }
  RTM_FUZZ_CHECK(reference_utf8(*decoded), "decoded text is valid UTF-8");
  // %00 is refused; a raw NUL (which no MQTT topic holds) is left as it is.
  RTM_FUZZ_CHECK(decoded->find('\0') == std::string::npos || input.find('\0') != std::string::npos,
                 "decoding never makes a NUL");
  RTM_FUZZ_CHECK(decoded->size() <= input.size(), "decoding never grows the text");
  if (decoded->find('\0') == std::string::npos) {
    const auto again = percent_decode(percent_encode_all(*decoded));
    RTM_FUZZ_CHECK(again && *again == *decoded, "encoding every byte then decoding round-trips");
  }
}

// Whatever the tree parses, it builds back byte for byte.
void check_tree_parse(const TopicTree& tree, std::string_view topic) {
  const auto parsed = tree.parse(topic);
  if (!parsed) return;
  std::string rebuilt;
  switch (parsed->kind) {
    case TopicKind::request:
      RTM_FUZZ_CHECK(!parsed->uid.empty() && !parsed->uri.empty(), "request parts are not empty");
      rebuilt = tree.request(parsed->uid, parsed->uri);
      break;
    case TopicKind::response:
      RTM_FUZZ_CHECK(!parsed->uid.empty() && !parsed->uri.empty(), "response parts are not empty");
      rebuilt = tree.response(parsed->uid, parsed->uri);
      break;
    case TopicKind::user_event:
      RTM_FUZZ_CHECK(!parsed->event_kind.empty(), "event kind is not empty");
      rebuilt = tree.user_event(parsed->uid, parsed->event_kind);
      break;
    case TopicKind::inbox:
      RTM_FUZZ_CHECK(!parsed->from.empty(), "inbox sender is not empty");
      rebuilt = tree.inbox(parsed->uid, parsed->from);
      break;
    case TopicKind::channel_message:
      RTM_FUZZ_CHECK(
          !parsed->channel.empty() && !parsed->topic.empty() && !parsed->publisher.empty(),
          "channel message parts are not empty");
      rebuilt = tree.channel_message(parsed->channel, parsed->topic, parsed->publisher);
      break;
    case TopicKind::channel_events:
      rebuilt = tree.channel_events(parsed->channel);
      break;
    case TopicKind::presence:
      rebuilt = tree.presence(parsed->uid);
      break;
    case TopicKind::message_channel:
      RTM_FUZZ_CHECK(!parsed->channel.empty() && !parsed->publisher.empty(),
                     "message channel parts are not empty");
      rebuilt = tree.message_channel(parsed->channel, parsed->publisher, parsed->string_type);
      break;
    case TopicKind::message_channel_events:
      rebuilt = tree.message_channel_events(parsed->channel);
      break;
  }
  RTM_FUZZ_CHECK(rebuilt == topic, "a parsed topic builds back to itself");
  for (const std::string* name : {&parsed->uid, &parsed->event_kind, &parsed->from,
                                  &parsed->channel, &parsed->topic, &parsed->publisher}) {
    RTM_FUZZ_CHECK(name->find('/') == std::string::npos, "a name part is one level");
  }
}

// Whatever the tree builds from valid names, it parses back to them.
void check_tree_build(const TopicTree& tree, std::string_view a, std::string_view b) {
  if (!reference_name(a) || !reference_name(b)) return;
  const std::string sa(a);
  const std::string sb(b);
  auto presence = tree.parse(tree.presence(a));
  RTM_FUZZ_CHECK(presence && presence->kind == TopicKind::presence && presence->uid == sa,
                 "presence round-trips");
  auto inbox = tree.parse(tree.inbox(a, b));
  RTM_FUZZ_CHECK(inbox && inbox->kind == TopicKind::inbox && inbox->uid == sa && inbox->from == sb,
                 "inbox round-trips");
  auto event = tree.parse(tree.user_event(a, b));
  RTM_FUZZ_CHECK(
      event && event->kind == TopicKind::user_event && event->uid == sa && event->event_kind == sb,
      "user event round-trips");
  auto message = tree.parse(tree.channel_message(a, b, a));
  RTM_FUZZ_CHECK(message && message->kind == TopicKind::channel_message && message->channel == sa &&
                     message->topic == sb && message->publisher == sa,
                 "channel message round-trips");
  auto events = tree.parse(tree.channel_events(b));
  RTM_FUZZ_CHECK(events && events->kind == TopicKind::channel_events && events->channel == sb,
                 "channel events round-trip");
  auto request = tree.parse(tree.request(a, b));
  RTM_FUZZ_CHECK(
      request && request->kind == TopicKind::request && request->uid == sa && request->uri == sb,
      "request round-trips");
  RTM_FUZZ_CHECK(filter_matches(tree.request_filter(), tree.request(a, b)),
                 "the request filter covers requests");
  RTM_FUZZ_CHECK(filter_matches(tree.user_subtree(a), tree.response(a, b)) &&
                     filter_matches(tree.user_subtree(a), tree.inbox(a, b)) &&
                     filter_matches(tree.user_subtree(a), tree.user_event(a, b)),
                 "a user's subtree covers its responses, inbox and events");
  RTM_FUZZ_CHECK(!filter_matches(tree.user_subtree(a), tree.request(a, b)),
                 "a user's subtree never holds its own requests");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = rtm::fuzz::text(data, size);
  const auto [first, rest] = rtm::fuzz::split_line(input);

  const auto bad = utf8_error_offset(input);
  RTM_FUZZ_CHECK(bad.has_value() != reference_utf8(input), "UTF-8 check disagrees with Unicode");
  RTM_FUZZ_CHECK(is_valid_utf8(input) == !bad.has_value(), "is_valid_utf8 and the offset agree");
  if (bad) {
    RTM_FUZZ_CHECK(*bad < input.size() && reference_utf8(input.substr(0, *bad)),
                   "the offset is the first ill-formed sequence");
  }

  check_names(first, rest);
  check_uri(input);
  check_percent_decode(input);

  static const TopicTree tree("rtm");
  static const TopicTree deep("acme/rtm");
  check_tree_parse(tree, input);
  check_tree_parse(deep, input);
  check_tree_build(tree, first, rest);
  check_tree_build(deep, first, rest);
  return 0;
}
