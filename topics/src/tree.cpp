#include "rtm/topics/tree.hpp"

#include <initializer_list>
#include <stdexcept>
#include <utility>

#include "rtm/topics/names.hpp"

namespace rtm::topics {
namespace {

std::string join(std::initializer_list<std::string_view> levels) {
  std::size_t size = 0;
  for (std::string_view level : levels) size += level.size() + 1;
  std::string topic;
  topic.reserve(size);
  for (std::string_view level : levels) {
    topic.append(level);
    topic.push_back('/');
  }
  topic.pop_back();
  return topic;
}

// Walks the levels of a topic left to right. "" is one empty level and "a/" is "a" then "",
// so an exhausted walk is told apart from an empty level.
class Levels {
 public:
  explicit Levels(std::string_view text) : rest_(text) {}

  // The next level, or nullopt when none is left.
  std::optional<std::string_view> next() {
    if (done_) return std::nullopt;
    const std::size_t slash = rest_.find('/');
    if (slash == std::string_view::npos) {
      done_ = true;
      return rest_;
    }
    const std::string_view level = rest_.substr(0, slash);
    rest_ = rest_.substr(slash + 1);
    return level;
  }
  // The next level if it exists and is not empty.
  std::optional<std::string_view> next_non_empty() {
    auto level = next();
    if (!level || level->empty()) return std::nullopt;
    return level;
  }
  // All levels left, joined by '/', if any are left and they are not a single empty level.
  std::optional<std::string_view> remainder_non_empty() const {
    if (done_ || rest_.empty()) return std::nullopt;
    return rest_;
  }
  bool done() const { return done_; }

 private:
  std::string_view rest_;
  bool done_ = false;
};

// Fills `outputs` with exactly as many non-empty levels as are left.
bool take_exact(Levels& levels, std::initializer_list<std::string*> outputs) {
  for (std::string* output : outputs) {
    auto level = levels.next_non_empty();
    if (!level) return false;
    *output = std::string(*level);
  }
  return levels.done();
}

// The URI of a request or response: everything left, which may span several levels.
std::optional<ParsedTopic> take_uri(const Levels& levels, ParsedTopic& parsed) {
  auto uri = levels.remainder_non_empty();
  if (!uri) return std::nullopt;
  parsed.uri = std::string(*uri);
  return std::move(parsed);
}

}  // namespace

TopicTree::TopicTree(std::string prefix) : prefix_(std::move(prefix)) {
  // A bad prefix is a configuration error that config checking reports first; reaching here
  // with one is a programming error, and every topic built from it would be wrong.
  if (auto error = prefix_error(prefix_)) throw std::invalid_argument(*error);
}

std::optional<std::string> TopicTree::prefix_error(std::string_view prefix) {
  const std::string shown = "prefix \"" + std::string(prefix) + "\"";
  if (prefix.empty()) return std::string("prefix is empty");
  if (auto error = topic_name_error(prefix)) return "prefix is not a valid topic: " + *error;
  if (prefix.front() == '$') {
    return shown + " starts with '$', which brokers reserve for their own topics";
  }
  std::size_t level_start = 0;
  for (std::size_t i = 0; i <= prefix.size(); ++i) {
    if (i < prefix.size() && prefix[i] != '/') continue;
    if (i == level_start) {
      return shown + " has an empty level at byte " + std::to_string(i);
    }
    level_start = i + 1;
  }
  return std::nullopt;
}

std::string TopicTree::request(std::string_view uid, std::string_view uri) const {
  return join({prefix_, "req", uid, uri});
}

std::string TopicTree::response(std::string_view uid, std::string_view uri) const {
  return join({prefix_, "u", uid, "res", uri});
}

std::string TopicTree::user_event(std::string_view uid, std::string_view kind) const {
  return join({prefix_, "u", uid, "events", kind});
}

std::string TopicTree::user_subtree(std::string_view uid) const {
  return join({prefix_, "u", uid, "#"});
}

std::string TopicTree::inbox(std::string_view to, std::string_view from) const {
  return join({prefix_, "u", to, "inbox", from});
}

std::string TopicTree::channel_message(std::string_view channel, std::string_view topic,
                                       std::string_view publisher) const {
  return join({prefix_, "ch", channel, topic, publisher});
}

std::string TopicTree::channel_events(std::string_view channel) const {
  return join({prefix_, "events", channel});
}

std::string TopicTree::message_channel(std::string_view channel, std::string_view publisher,
                                       bool string_type) const {
  if (string_type) return join({prefix_, "mc", channel, publisher, kStringTypeLevel});
  return join({prefix_, "mc", channel, publisher});
}

std::string TopicTree::message_channel_filter(std::string_view channel) const {
  return join({prefix_, "mc", channel, "#"});
}

std::string TopicTree::message_channel_events(std::string_view channel) const {
  return join({prefix_, "mcevents", channel});
}

std::string TopicTree::presence(std::string_view uid) const {
  return join({prefix_, "presence", uid});
}

std::string TopicTree::request_filter() const {
  return join({prefix_, "req", "+", "#"});
}

std::string TopicTree::presence_filter() const {
  return join({prefix_, "presence", "+"});
}

std::string TopicTree::gateway_status() const { return join({prefix_, "gateway", "status"}); }
std::string TopicTree::gateway_grants() const { return join({prefix_, "gateway", "grants"}); }

std::optional<ParsedTopic> TopicTree::parse(std::string_view topic) const {
  if (topic.size() <= prefix_.size() || topic.compare(0, prefix_.size(), prefix_) != 0 ||
      topic[prefix_.size()] != '/') {
    return std::nullopt;
  }
  Levels levels(topic.substr(prefix_.size() + 1));
  const std::string_view branch = *levels.next();

  ParsedTopic parsed{};
  if (branch == "req" || branch == "u") {
    auto uid = levels.next_non_empty();
    if (!uid) return std::nullopt;
    parsed.uid = std::string(*uid);
    if (branch == "req") {
      parsed.kind = TopicKind::request;
      return take_uri(levels, parsed);
    }
    const auto section = levels.next();
    if (section == "res") {
      parsed.kind = TopicKind::response;
      return take_uri(levels, parsed);
    }
    if (section == "events") {
      parsed.kind = TopicKind::user_event;
      if (!take_exact(levels, {&parsed.event_kind})) return std::nullopt;
      return parsed;
    }
    if (section == "inbox") {
      parsed.kind = TopicKind::inbox;
      if (!take_exact(levels, {&parsed.from})) return std::nullopt;
      return parsed;
    }
    return std::nullopt;
  }
  if (branch == "ch") {
    parsed.kind = TopicKind::channel_message;
    if (!take_exact(levels, {&parsed.channel, &parsed.topic, &parsed.publisher})) {
      return std::nullopt;
    }
    return parsed;
  }
  if (branch == "events") {
    parsed.kind = TopicKind::channel_events;
    if (!take_exact(levels, {&parsed.channel})) return std::nullopt;
    return parsed;
  }
  if (branch == "mc") {
    parsed.kind = TopicKind::message_channel;
    const auto channel = levels.next_non_empty();
    const auto publisher = channel ? levels.next_non_empty() : std::nullopt;
    if (!publisher) return std::nullopt;
    parsed.channel = std::string(*channel);
    parsed.publisher = std::string(*publisher);
    if (const auto type = levels.next()) {
      if (*type != kStringTypeLevel || levels.next()) return std::nullopt;
      parsed.string_type = true;
    }
    return parsed;
  }
  if (branch == "mcevents") {
    parsed.kind = TopicKind::message_channel_events;
    if (!take_exact(levels, {&parsed.channel})) return std::nullopt;
    return parsed;
  }
  if (branch == "presence") {
    parsed.kind = TopicKind::presence;
    if (!take_exact(levels, {&parsed.uid})) return std::nullopt;
    return parsed;
  }
  return std::nullopt;
}

}  // namespace rtm::topics
