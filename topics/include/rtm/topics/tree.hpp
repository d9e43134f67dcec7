#pragma once
// The topic tree of BRIEF §3 under a configurable prefix P: building every topic and
// parsing an incoming topic back into its parts. Pure, no I/O.
#include <optional>
#include <string>
#include <string_view>

namespace rtm::topics {

enum class TopicKind {
  request,                 // P/req/{uid}/{uri...}
  response,                // P/u/{uid}/res/{uri...}
  user_event,              // P/u/{uid}/events/{kind}
  inbox,                   // P/u/{uid}/inbox/{from}
  channel_message,         // P/ch/{channel}/{topic}/{publisher}
  channel_events,          // P/events/{channel}
  presence,                // P/presence/{uid}
  message_channel,         // P/mc/{channel}/{publisher}[/string]
  message_channel_events,  // P/mcevents/{channel}
};

// The level after the publisher of a message channel message that marks it as a string
// (RTM 2's message type STRING); a message without it is binary.
inline constexpr std::string_view kStringTypeLevel = "string";

// The parts of a topic of the tree. Names are returned as found in the topic (not
// validated as RTM names: the caller validates, so that it can still answer a request
// with a bad uid on the mirrored topic).
struct ParsedTopic {
  TopicKind kind;
  std::string uid;        // request, response, user_event, inbox, presence
  std::string uri;        // request, response: everything after the uid / "res" level
  std::string event_kind; // user_event
  std::string from;       // inbox
  std::string channel;    // channel_message, channel_events
  std::string topic;      // channel_message
  bool string_type = false;  // message_channel: the `string` level is there
  std::string publisher;  // channel_message
};

class TopicTree {
 public:
  // `prefix` is one or more non-empty levels without wildcards ("rtm", "acme/rtm").
  explicit TopicTree(std::string prefix);
  // nullopt when `prefix` is usable, else why not.
  static std::optional<std::string> prefix_error(std::string_view prefix);

  const std::string& prefix() const { return prefix_; }

  std::string request(std::string_view uid, std::string_view uri) const;
  std::string response(std::string_view uid, std::string_view uri) const;
  std::string user_event(std::string_view uid, std::string_view kind) const;
  std::string user_subtree(std::string_view uid) const;  // P/u/{uid}/#
  std::string inbox(std::string_view to, std::string_view from) const;
  std::string channel_message(std::string_view channel, std::string_view topic,
                              std::string_view publisher) const;
  std::string channel_events(std::string_view channel) const;
  // Message channels (RTM 2): P/mc/{channel}/{publisher}, or .../string for a string.
  std::string message_channel(std::string_view channel, std::string_view publisher,
                              bool string_type = false) const;
  std::string message_channel_filter(std::string_view channel) const;  // P/mc/{channel}/#
  std::string message_channel_events(std::string_view channel) const;  // P/mcevents/{channel}
  std::string presence(std::string_view uid) const;

  std::string request_filter() const;   // P/req/+/#
  std::string presence_filter() const;  // P/presence/+
  std::string gateway_status() const;   // P/gateway/status
  std::string gateway_grants() const;   // P/gateway/grants (grant records for the broker)

  // nullopt if `topic` is not one of the tree's topics (other prefix, unknown branch,
  // wrong number of levels, empty required level).
  std::optional<ParsedTopic> parse(std::string_view topic) const;

 private:
  std::string prefix_;
};

}  // namespace rtm::topics
