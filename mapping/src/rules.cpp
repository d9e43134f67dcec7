// RuleSet: compiling mapping rules (with every problem reported) and routing messages.
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/pointer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <limits>
#include <map>
#include <unordered_map>
#include <utility>

#include "pattern.hpp"
#include "rtm/mapping/rules.hpp"
#include "rtm/mapping/json.hpp"
#include "rtm/topics/names.hpp"
#include "rtm/topics/tree.hpp"
#include "rtm/util/base64.hpp"

namespace rtm::mapping {

using detail::Captures;
using detail::SourcePattern;
using detail::Template;

namespace {

std::string indexed(std::string_view base, std::size_t index) {
  return std::string(base) + "[" + std::to_string(index) + "]";
}

// rapidjson output into a std::string, so that a JSON payload is written in place.
struct StringOutput {
  using Ch = char;
  std::string* out;
  void Put(char c) { out->push_back(c); }
  void Flush() {}
};
using JsonWriter = rapidjson::Writer<StringOutput>;

rapidjson::SizeType json_size(std::string_view text) {
  return static_cast<rapidjson::SizeType>(text.size());
}

std::optional<std::string> parse_json(std::string_view payload, rapidjson::Document& document) {
  return parse_untrusted_json(payload, document);
}

Decision make_drop(const std::string& rule, std::string reason) {
  Decision drop;
  drop.kind = Decision::Kind::drop;
  drop.rule = rule;
  drop.reason = "rule \"" + rule + "\": " + reason;
  return drop;
}

// Checks a name template at compile time: the literal parts must be usable in a name.
std::optional<std::string> name_template_error(const Template& compiled, std::string_view what) {
  if (!compiled.has_captures()) {
    if (auto error = topics::name_error(compiled.text(), what)) {
      return "is not a legal " + std::string(what) + " name: " + *error;
    }
    return std::nullopt;
  }
  std::size_t minimum_bytes = 0;
  for (const detail::TemplatePiece& piece : compiled.pieces()) {
    if (piece.capture >= 0) {
      minimum_bytes += 1;
      continue;
    }
    minimum_bytes += piece.literal.size();
    if (piece.literal.size() <= topics::kMaxNameBytes) {
      if (auto error = topics::name_error(piece.literal, what)) {
        return "text " + detail::quoted(piece.literal) + " cannot be part of a " +
               std::string(what) + " name: " + *error;
      }
    }
  }
  if (minimum_bytes > topics::kMaxNameBytes) {
    return "always gives more than " + std::to_string(topics::kMaxNameBytes) + " bytes, the " +
           std::string(what) + " name limit";
  }
  return std::nullopt;
}

// Checks a device topic template at compile time: a topic name once captures are filled.
std::optional<std::string> device_template_error(const Template& compiled) {
  if (!compiled.has_captures()) {
    if (auto error = topics::topic_name_error(compiled.text())) {
      return "is not a valid topic name: " + *error;
    }
  }
  std::size_t literal_bytes = 0;
  for (const detail::TemplatePiece& piece : compiled.pieces()) {
    if (piece.capture >= 0) continue;
    literal_bytes += piece.literal.size();
    if (auto bad = topics::utf8_error_offset(piece.literal)) {
      return "text " + detail::quoted(piece.literal) + " is not valid UTF-8 at byte " +
             std::to_string(*bad);
    }
    const std::size_t bad = piece.literal.find_first_of(std::string_view("+#\0", 3));
    if (bad != std::string::npos) {
      return "text " + detail::quoted(piece.literal) +
             " has a wildcard or NUL: a target is a topic name, not a filter";
    }
  }
  if (literal_bytes > topics::kMaxTopicBytes) {
    return "is longer than " + std::to_string(topics::kMaxTopicBytes) + " bytes";
  }
  const auto& pieces = compiled.pieces();
  if (!pieces.empty() && pieces.front().capture < 0 && !pieces.front().literal.empty() &&
      pieces.front().literal.front() == '$') {
    return "starts with '$', which brokers reserve for their own topics";
  }
  return std::nullopt;
}

// Lists the problems of one rule or presence rule under a path.
class ErrorSink {
 public:
  explicit ErrorSink(std::vector<RuleError>& errors) : errors_(errors) {}
  void add(std::string path, std::string message) {
    errors_.push_back(RuleError{std::move(path), std::move(message)});
  }
  std::size_t count() const { return errors_.size(); }

 private:
  std::vector<RuleError>& errors_;
};

}  // namespace

struct RuleSet::Compiled {
  enum class Kind { rule, presence };
  enum class TargetKind { channel, inbox, device };
  enum class FieldKind { text, timestamp, payload, payload_base64, payload_json, topic };
  struct Field {
    std::string name;
    FieldKind kind = FieldKind::text;
    Template text;  // FieldKind::text
  };

  Kind kind = Kind::rule;
  std::string name;
  SourcePattern source;
  int qos = 0;
  bool retain = false;
  bool keep_source = true;

  TargetKind target_kind = TargetKind::channel;
  Template channel, topic, publisher;  // TargetKind::channel
  Template inbox_to, inbox_from;       // TargetKind::inbox
  Template device_topic;               // TargetKind::device

  TransformKind transform = TransformKind::pass;
  std::vector<Field> fields;
  bool needs_payload_json = false;
  rapidjson::Pointer pointer;

  Template uid;  // presence
  std::string online_payload, offline_payload;

  // The filter a published output falls under, for the loop check.
  std::string output_filter(const std::string& prefix) const {
    switch (target_kind) {
      case TargetKind::channel:
        return prefix + "/ch/" + channel.as_filter() + "/" + topic.as_filter() + "/" +
               publisher.as_filter();
      case TargetKind::inbox:
        return prefix + "/u/" + inbox_to.as_filter() + "/inbox/" + inbox_from.as_filter();
      case TargetKind::device:
        return device_topic.as_filter();
    }
    return {};
  }

  // Fill `decision` (default-constructed) in place; the drop reason when the message
  // cannot be carried.
  std::optional<std::string> decide(std::string_view topic_name, std::string_view payload,
                                    std::int64_t now_ms, const Captures& captures,
                                    const std::string& prefix, PayloadCopy copy,
                                    Decision& decision) const;
  std::optional<std::string> decide_presence(std::string_view payload, const Captures& captures,
                                             Decision& decision) const;

 private:
  // Expands a name template into `out`; the drop reason when the result is not a name.
  std::optional<std::string> expand_name(const Template& name_template, std::string_view what,
                                         const Captures& captures, std::string& out) const;
  std::optional<std::string> write_envelope(std::string_view topic_name, std::string_view payload,
                                            std::int64_t now_ms, const Captures& captures,
                                            std::string& out) const;
  std::optional<std::string> extract(std::string_view payload, std::string& out) const;
};

struct RuleSet::Index {
  // Rules whose source starts with a literal level, by that level, each list merged with
  // the rules starting with a wildcard and kept in rule order.
  std::unordered_map<std::string_view, std::vector<std::uint32_t>> by_first_level;
  std::vector<std::uint32_t> wildcard_first;

  const std::vector<std::uint32_t>& candidates(std::string_view topic) const {
    if (by_first_level.empty()) return wildcard_first;
    const std::string_view first = topic.substr(0, topic.find('/'));
    const auto found = by_first_level.find(first);
    return found == by_first_level.end() ? wildcard_first : found->second;
  }
};

// ---- routing ----

namespace {

// The bytes name_error accepts, as a table: the hot path checks names without building
// an error; name_error runs only to explain a bad one.
struct NameBytes {
  bool allowed[256] = {};
  constexpr NameBytes() {
    for (int c = 0x21; c <= 0x7E; ++c) allowed[c] = true;
    for (char c : {'/', '+', '#', '$', '"', '\\', '*'})
      allowed[static_cast<unsigned char>(c)] = false;
  }
};
constexpr NameBytes kNameBytes;

bool is_legal_name(std::string_view name) {
  if (name.empty() || name.size() > topics::kMaxNameBytes) return false;
  for (char c : name) {
    if (!kNameBytes.allowed[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

// Sets `out` to the concatenation of `parts` with one allocation at most.
void assign_joined(std::string& out, std::initializer_list<std::string_view> parts) {
  std::size_t size = 0;
  for (std::string_view part : parts) size += part.size();
  out.resize(size);
  char* position = out.data();
  for (std::string_view part : parts) {
    if (part.empty()) continue;
    std::memcpy(position, part.data(), part.size());
    position += part.size();
  }
}

}  // namespace

std::optional<std::string> RuleSet::Compiled::expand_name(const Template& name_template,
                                                          std::string_view what,
                                                          const Captures& captures,
                                                          std::string& out) const {
  if (!name_template.has_captures()) {  // checked at compile time
    out = name_template.text();
    return std::nullopt;
  }
  out.clear();
  name_template.expand_into(out, captures);
  if (is_legal_name(out)) return std::nullopt;
  // Blame the capture when one alone is not a legal name; the literal parts were checked.
  for (const detail::TemplatePiece& piece : name_template.pieces()) {
    if (piece.capture < 0) continue;
    const std::string_view value = captures[static_cast<std::size_t>(piece.capture)];
    if (auto capture_error = topics::name_error(value, what)) {
      return "capture {" + source.capture_names()[static_cast<std::size_t>(piece.capture)] +
             "} = " + detail::quoted(value) + " is not a legal " + std::string(what) +
             " name: " + *capture_error;
    }
  }
  return std::string(what) + " " + detail::quoted(out) + " (from " + name_template.text() +
         ") is not a legal " + std::string(what) +
         " name: " + topics::name_error(out, what).value_or("?");
}

std::optional<std::string> RuleSet::Compiled::write_envelope(std::string_view topic_name,
                                                             std::string_view payload,
                                                             std::int64_t now_ms,
                                                             const Captures& captures,
                                                             std::string& out) const {
  rapidjson::Document payload_json;
  if (needs_payload_json) {
    if (auto problem = parse_json(payload, payload_json)) return problem;
  }
  StringOutput stream{&out};
  JsonWriter writer(stream);
  writer.StartObject();
  std::string text;
  for (const Field& field : fields) {
    writer.Key(field.name.data(), json_size(field.name));
    switch (field.kind) {
      case FieldKind::text:
        text = field.text.expand(captures);
        if (field.text.has_captures()) {
          if (auto bad = topics::utf8_error_offset(text)) {
            return "field \"" + field.name + "\" " + detail::quoted(text) +
                   " is not valid UTF-8 at byte " + std::to_string(*bad);
          }
        }
        writer.String(text.data(), json_size(text));
        break;
      case FieldKind::timestamp:
        writer.Int64(now_ms);
        break;
      case FieldKind::payload:
        if (auto bad = topics::utf8_error_offset(payload)) {
          return "payload is not valid UTF-8 at byte " + std::to_string(*bad) +
                 ", so it cannot be the string field \"" + field.name +
                 "\" (use {payload_base64} for binary payloads)";
        }
        if (payload.size() > std::numeric_limits<rapidjson::SizeType>::max()) {
          return "payload is too large for a JSON string";
        }
        writer.String(payload.data(), json_size(payload));
        break;
      case FieldKind::payload_base64:
        text.clear();
        util::append_base64(text, payload);
        writer.String(text.data(), json_size(text));
        break;
      case FieldKind::payload_json:
        payload_json.Accept(writer);
        break;
      case FieldKind::topic:
        if (auto bad = topics::utf8_error_offset(topic_name)) {
          return "topic is not valid UTF-8 at byte " + std::to_string(*bad);
        }
        writer.String(topic_name.data(), json_size(topic_name));
        break;
    }
  }
  writer.EndObject();
  return std::nullopt;
}

std::optional<std::string> RuleSet::Compiled::extract(std::string_view payload,
                                                      std::string& out) const {
  rapidjson::Document document;
  if (auto problem = parse_json(payload, document)) return problem;
  const rapidjson::Value* value = pointer.Get(document);
  if (value == nullptr) {
    std::string shown;
    StringOutput stream{&shown};
    pointer.Stringify(stream);
    return "payload has no value at JSON pointer " + shown;
  }
  if (value->IsString()) {
    out.assign(value->GetString(), value->GetStringLength());
    return std::nullopt;
  }
  StringOutput stream{&out};
  JsonWriter writer(stream);
  value->Accept(writer);
  return std::nullopt;
}

std::optional<std::string> RuleSet::Compiled::decide(std::string_view topic_name,
                                                     std::string_view payload, std::int64_t now_ms,
                                                     const Captures& captures,
                                                     const std::string& prefix, PayloadCopy copy,
                                                     Decision& decision) const {
  decision.kind = Decision::Kind::publish;
  decision.rule = name;
  decision.qos = qos;
  decision.retain = retain;
  decision.keep_source = keep_source;

  switch (target_kind) {
    case TargetKind::channel: {
      if (auto reason = expand_name(channel, "channel", captures, decision.channel)) return reason;
      if (auto reason = expand_name(topic, "topic", captures, decision.topic_name)) return reason;
      if (auto reason = expand_name(publisher, "publisher", captures, decision.publisher)) {
        return reason;
      }
      assign_joined(decision.topic, {prefix, "/ch/", decision.channel, "/", decision.topic_name,
                                     "/", decision.publisher});
      break;
    }
    case TargetKind::inbox: {
      std::string to;
      std::string from;
      if (auto reason = expand_name(inbox_to, "uid", captures, to)) return reason;
      if (auto reason = expand_name(inbox_from, "uid", captures, from)) return reason;
      assign_joined(decision.topic, {prefix, "/u/", to, "/inbox/", from});
      break;
    }
    case TargetKind::device: {
      decision.topic = device_topic.expand(captures);
      if (device_topic.has_captures()) {
        if (auto error = topics::topic_name_error(decision.topic)) {
          return "target topic " + detail::quoted(decision.topic) +
                 " is not a valid topic name: " + *error;
        }
        if (decision.topic.front() == '$') {
          return "target topic " + detail::quoted(decision.topic) +
                 " starts with '$', which brokers reserve";
        }
      }
      break;
    }
  }

  switch (transform) {
    case TransformKind::pass:
      decision.payload_unchanged = true;
      if (copy == PayloadCopy::always) decision.payload.assign(payload.data(), payload.size());
      return std::nullopt;
    case TransformKind::envelope:
      return write_envelope(topic_name, payload, now_ms, captures, decision.payload);
    case TransformKind::extract:
      return extract(payload, decision.payload);
  }
  return std::nullopt;
}

std::optional<std::string> RuleSet::Compiled::decide_presence(std::string_view payload,
                                                              const Captures& captures,
                                                              Decision& decision) const {
  decision.kind = Decision::Kind::presence;
  decision.rule = name;
  if (auto reason = expand_name(uid, "uid", captures, decision.uid)) return reason;
  if (payload == online_payload) {
    decision.online = true;
  } else if (payload == offline_payload) {
    decision.online = false;
  } else {
    return "payload " + detail::quoted(payload) + " is neither the online payload " +
           detail::quoted(online_payload) + " nor the offline payload " +
           detail::quoted(offline_payload);
  }
  return std::nullopt;
}

bool RuleSet::matches_any(std::string_view topic) const {
  if (!index_) return false;
  Captures captures;
  for (const std::uint32_t i : index_->candidates(topic)) {
    if (rules_[i]->source.match(topic, captures)) return true;
  }
  return false;
}

std::vector<Decision> RuleSet::route(std::string_view topic, std::string_view payload,
                                     std::int64_t now_ms, PayloadCopy copy) const {
  std::vector<Decision> decisions;
  if (!index_) return decisions;
  Captures captures;
  for (const std::uint32_t i : index_->candidates(topic)) {
    const Compiled& rule = *rules_[i];
    if (!rule.source.match(topic, captures)) continue;
    // Nothing below is expected to throw but allocation; a failing rule must not keep
    // the others from deciding.
    const std::size_t decided_before = decisions.size();
    try {
      Decision& decision = decisions.emplace_back();  // filled in place: no moves
      auto reason = rule.kind == Compiled::Kind::presence
                        ? rule.decide_presence(payload, captures, decision)
                        : rule.decide(topic, payload, now_ms, captures, prefix_, copy, decision);
      if (reason) decision = make_drop(rule.name, std::move(*reason));
    } catch (const std::exception& error) {
      try {
        Decision drop = make_drop(rule.name, std::string("internal error: ") + error.what());
        if (decisions.size() > decided_before) {
          decisions.back() = std::move(drop);
        } else {
          decisions.push_back(std::move(drop));
        }
      } catch (...) {
      }
    }
  }
  return decisions;
}

// ---- compiling ----

namespace {

struct NamedTarget {
  const std::string* text;
  const char* key;   // "channel"
  const char* what;  // "channel", for name errors
};

// Compiles the RTM-name templates of a target (channel/topic/publisher or inbox to/from).
// All must be given.
bool compile_name_targets(const std::vector<NamedTarget>& parts, const std::string& path,
                          const char* kind_text, const SourcePattern& source, ErrorSink& sink,
                          std::vector<Template*> outputs) {
  bool ok = true;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    const std::string part_path = path + "." + parts[k].key;
    if (parts[k].text->empty()) {
      sink.add(part_path, std::string("is empty: ") + kind_text);
      ok = false;
      continue;
    }
    auto compiled = Template::compile(*parts[k].text, source);
    if (!compiled) {
      sink.add(part_path, compiled.error());
      ok = false;
      continue;
    }
    if (auto error = name_template_error(*compiled, parts[k].what)) {
      sink.add(part_path, *error);
      ok = false;
      continue;
    }
    *outputs[k] = std::move(compiled).value();
  }
  return ok;
}

// The source of an outbound rule: a channel topic or an inbox of the RTM tree.
bool compile_outbound_source(const SourceSpec& spec, const std::string& prefix,
                             const std::string& path, ErrorSink& sink, SourcePattern& out) {
  if (!spec.device_topic.empty()) {
    sink.add(path + ".device_topic",
             "is for inbound rules; an outbound rule reads a channel topic (channel, topic, "
             "publisher) or an inbox (inbox_to, inbox_from)");
    return false;
  }
  const bool has_channel = !spec.channel.empty() || !spec.topic.empty() || !spec.publisher.empty();
  const bool has_inbox = !spec.inbox_to.empty() || !spec.inbox_from.empty();
  if (has_channel && has_inbox) {
    sink.add(path, "names both a channel topic and an inbox; an outbound rule reads one");
    return false;
  }
  if (!has_channel && !has_inbox) {
    sink.add(path,
             "is empty: an outbound rule reads a channel topic (channel, topic, publisher) "
             "or an inbox (inbox_to, inbox_from)");
    return false;
  }
  struct Part {
    const std::string* text;
    const char* key;
    const char* what;
  };
  const std::vector<Part> parts =
      has_channel ? std::vector<Part>{{&spec.channel, "channel", "channel"},
                                      {&spec.topic, "topic", "topic"},
                                      {&spec.publisher, "publisher", "publisher"}}
                  : std::vector<Part>{{&spec.inbox_to, "inbox_to", "uid"},
                                      {&spec.inbox_from, "inbox_from", "uid"}};
  SourcePattern pattern;
  std::size_t level_start = 0;
  for (std::size_t i = 0; i <= prefix.size(); ++i) {
    if (i < prefix.size() && prefix[i] != '/') continue;
    pattern.add_literal(std::string_view(prefix).substr(level_start, i - level_start));
    level_start = i + 1;
  }
  pattern.add_literal(has_channel ? "ch" : "u");
  bool ok = true;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    const std::string part_path = path + "." + parts[k].key;
    auto level = detail::parse_name_level(*parts[k].text, parts[k].what);
    if (!level) {
      sink.add(part_path, level.error());
      ok = false;
      continue;
    }
    switch (level->kind) {
      case detail::NameLevel::Kind::literal:
        pattern.add_literal(level->text);
        break;
      case detail::NameLevel::Kind::any_level:
        pattern.add_any_level();
        break;
      case detail::NameLevel::Kind::capture:
        if (auto added = pattern.add_capture(level->text); !added) {
          sink.add(part_path, added.error());
          ok = false;
        }
        break;
    }
    if (!has_channel && k == 0) pattern.add_literal("inbox");
  }
  if (ok) out = std::move(pattern);
  return ok;
}

std::string special_list() {
  return "{timestamp}, {payload}, {payload_base64}, {payload_json}, {topic}";
}

}  // namespace

Expected<RuleSet, std::vector<RuleError>> RuleSet::compile(
    const std::vector<RuleSpec>& rules, const std::vector<PresenceRuleSpec>& presence_rules,
    const std::string& prefix, const std::vector<std::string>& reserved_filters) {
  std::vector<RuleError> errors;
  ErrorSink sink(errors);
  if (auto error = topics::TopicTree::prefix_error(prefix)) {
    sink.add("prefix", *error);
    return errors;  // every RTM source and target depends on it
  }
  for (std::size_t i = 0; i < reserved_filters.size(); ++i) {
    if (auto error = topics::topic_filter_error(reserved_filters[i])) {
      sink.add(indexed("reserved_filters", i), *error);
    }
  }

  std::map<std::string, std::string> name_paths;  // rule name -> path of its first use
  auto check_name = [&](const std::string& name, const std::string& path) {
    if (name.empty()) {
      sink.add(path + ".name", "is empty: every rule needs a unique name");
      return;
    }
    if (auto error = topics::name_error(name, "rule name")) {
      sink.add(path + ".name", *error);
      return;
    }
    auto [found, inserted] = name_paths.emplace(name, path);
    if (!inserted) {
      sink.add(path + ".name", "\"" + name + "\" is already the name of " + found->second);
    }
  };

  // Compiled rules by position; nullptr where a rule had errors.
  std::vector<std::shared_ptr<Compiled>> compiled_rules(rules.size());
  std::vector<std::shared_ptr<Compiled>> compiled_presence(presence_rules.size());

  for (std::size_t i = 0; i < rules.size(); ++i) {
    const RuleSpec& spec = rules[i];
    const std::string path = indexed("rules", i);
    const std::size_t errors_before = sink.count();
    auto rule = std::make_shared<Compiled>();
    rule->kind = Compiled::Kind::rule;
    rule->name = spec.name;
    rule->qos = spec.qos;
    rule->retain = spec.retain;
    rule->keep_source = spec.keep_source;
    rule->transform = spec.transform.kind;
    check_name(spec.name, path);
    if (spec.qos < 0 || spec.qos > 1) {
      sink.add(path + ".qos", "must be 0 or 1, got " + std::to_string(spec.qos));
    }
    if (!spec.keep_source && spec.direction == Direction::outbound) {
      sink.add(path + ".keep_source",
               "false is for inbound rules only: the subscribers of an RTM topic always get its "
               "messages");
    }

    // Source.
    bool source_ok = false;
    const std::string source_path = path + ".source";
    if (spec.direction == Direction::inbound) {
      const std::pair<const std::string*, const char*> outbound_only[] = {
          {&spec.source.channel, "channel"},
          {&spec.source.topic, "topic"},
          {&spec.source.publisher, "publisher"},
          {&spec.source.inbox_to, "inbox_to"},
          {&spec.source.inbox_from, "inbox_from"}};
      for (const auto& [text, key] : outbound_only) {
        if (!text->empty()) {
          sink.add(source_path + "." + key,
                   "is for outbound rules; an inbound rule reads source.device_topic");
        }
      }
      auto pattern = SourcePattern::compile_device(spec.source.device_topic);
      if (pattern) {
        rule->source = std::move(pattern).value();
        source_ok = true;
      } else {
        sink.add(source_path + ".device_topic", pattern.error());
      }
    } else {
      source_ok = compile_outbound_source(spec.source, prefix, source_path, sink, rule->source);
    }

    // Target. Without a source its captures are unknown, so templates are not checked.
    const std::string target_path = path + ".target";
    const TargetSpec& target = spec.target;
    if (spec.direction == Direction::inbound) {
      if (!target.device_topic.empty()) {
        sink.add(target_path + ".device_topic",
                 "is for outbound rules; an inbound rule targets a channel (channel, topic, "
                 "publisher) or an inbox (inbox_to, inbox_from)");
      }
      const bool has_channel =
          !target.channel.empty() || !target.topic.empty() || !target.publisher.empty();
      const bool has_inbox = !target.inbox_to.empty() || !target.inbox_from.empty();
      if (has_channel && has_inbox) {
        sink.add(target_path, "names both a channel and an inbox; a rule has one target");
      } else if (!has_channel && !has_inbox) {
        sink.add(target_path,
                 "is empty: an inbound rule targets a channel (channel, topic, publisher) or "
                 "an inbox (inbox_to, inbox_from)");
      } else if (source_ok && has_channel) {
        rule->target_kind = Compiled::TargetKind::channel;
        compile_name_targets({{&target.channel, "channel", "channel"},
                              {&target.topic, "topic", "topic"},
                              {&target.publisher, "publisher", "publisher"}},
                             target_path, "a channel target needs channel, topic and publisher",
                             rule->source, sink, {&rule->channel, &rule->topic, &rule->publisher});
      } else if (source_ok) {
        rule->target_kind = Compiled::TargetKind::inbox;
        compile_name_targets(
            {{&target.inbox_to, "inbox_to", "uid"}, {&target.inbox_from, "inbox_from", "uid"}},
            target_path, "an inbox target needs inbox_to and inbox_from", rule->source, sink,
            {&rule->inbox_to, &rule->inbox_from});
      }
    } else {
      const std::pair<const std::string*, const char*> inbound_only[] = {
          {&target.channel, "channel"},
          {&target.topic, "topic"},
          {&target.publisher, "publisher"},
          {&target.inbox_to, "inbox_to"},
          {&target.inbox_from, "inbox_from"}};
      for (const auto& [text, key] : inbound_only) {
        if (!text->empty()) {
          sink.add(target_path + "." + key,
                   "is for inbound rules; an outbound rule targets target.device_topic");
        }
      }
      rule->target_kind = Compiled::TargetKind::device;
      if (target.device_topic.empty()) {
        sink.add(target_path + ".device_topic", "is empty: an outbound rule needs a device topic");
      } else if (source_ok) {
        auto compiled = Template::compile(target.device_topic, rule->source);
        if (!compiled) {
          sink.add(target_path + ".device_topic", compiled.error());
        } else if (auto error = device_template_error(*compiled)) {
          sink.add(target_path + ".device_topic", *error);
        } else {
          rule->device_topic = std::move(compiled).value();
        }
      }
    }

    // Transform.
    const std::string transform_path = path + ".transform";
    const TransformSpec& transform = spec.transform;
    if (transform.kind != TransformKind::envelope && !transform.fields.empty()) {
      sink.add(transform_path + ".fields", "only an envelope transform has fields");
    }
    if (transform.kind != TransformKind::extract && !transform.pointer.empty()) {
      sink.add(transform_path + ".pointer", "only an extract transform has a pointer");
    }
    if (transform.kind == TransformKind::envelope) {
      if (transform.fields.empty()) {
        sink.add(transform_path + ".fields", "is empty: an envelope needs at least one field");
      }
      std::map<std::string, std::size_t> field_names;
      for (std::size_t k = 0; k < transform.fields.size(); ++k) {
        const EnvelopeField& field = transform.fields[k];
        const std::string field_path = indexed(transform_path + ".fields", k);
        Compiled::Field compiled_field;
        compiled_field.name = field.name;
        if (field.name.empty()) {
          sink.add(field_path + ".name", "is empty");
        } else if (auto bad = topics::utf8_error_offset(field.name)) {
          sink.add(field_path + ".name", "is not valid UTF-8 at byte " + std::to_string(*bad));
        } else if (auto [found, inserted] = field_names.emplace(field.name, k); !inserted) {
          sink.add(field_path + ".name", "\"" + field.name + "\" is already the name of " +
                                             indexed(transform_path + ".fields", found->second));
        }
        auto tokens = Template::tokenize(field.value);
        if (!tokens) {
          sink.add(field_path + ".value", tokens.error());
          continue;
        }
        if (auto bad = topics::utf8_error_offset(field.value)) {
          sink.add(field_path + ".value", "is not valid UTF-8 at byte " + std::to_string(*bad));
          continue;
        }
        if (tokens->size() == 1 && (*tokens)[0].placeholder &&
            detail::is_special_name((*tokens)[0].text)) {
          const std::string& special = (*tokens)[0].text;
          compiled_field.kind = special == "timestamp"        ? Compiled::FieldKind::timestamp
                                : special == "payload"        ? Compiled::FieldKind::payload
                                : special == "payload_base64" ? Compiled::FieldKind::payload_base64
                                : special == "payload_json"   ? Compiled::FieldKind::payload_json
                                                              : Compiled::FieldKind::topic;
          if (compiled_field.kind == Compiled::FieldKind::payload_json) {
            rule->needs_payload_json = true;
          }
          rule->fields.push_back(std::move(compiled_field));
          continue;
        }
        bool special_inside = false;
        for (const Template::Token& token : *tokens) {
          if (token.placeholder && detail::is_special_name(token.text)) {
            sink.add(field_path + ".value", "{" + token.text +
                                                "} must be the whole value, not part of \"" +
                                                field.value + "\"");
            special_inside = true;
            break;
          }
        }
        if (special_inside || !source_ok) continue;
        auto compiled = Template::compile(field.value, rule->source);
        if (!compiled) {
          sink.add(field_path + ".value",
                   compiled.error() + "; the special values are " + special_list());
          continue;
        }
        compiled_field.text = std::move(compiled).value();
        rule->fields.push_back(std::move(compiled_field));
      }
    } else if (transform.kind == TransformKind::extract) {
      if (transform.pointer.empty()) {
        sink.add(transform_path + ".pointer",
                 "is empty: an extract transform needs a JSON pointer");
      } else if (transform.pointer.front() != '/') {
        sink.add(transform_path + ".pointer",
                 "\"" + transform.pointer + "\" is not a JSON pointer: it must start with '/'");
      } else {
        rapidjson::Pointer pointer(transform.pointer.data(), transform.pointer.size());
        if (!pointer.IsValid()) {
          sink.add(transform_path + ".pointer",
                   "\"" + transform.pointer + "\" is not a valid JSON pointer (RFC 6901) at byte " +
                       std::to_string(pointer.GetParseErrorOffset()) +
                       ": '~' must be followed by 0 or 1");
        } else {
          rule->pointer = std::move(pointer);
        }
      }
    }
    if (sink.count() == errors_before) compiled_rules[i] = std::move(rule);
  }

  for (std::size_t i = 0; i < presence_rules.size(); ++i) {
    const PresenceRuleSpec& spec = presence_rules[i];
    const std::string path = indexed("presence", i);
    const std::size_t errors_before = sink.count();
    auto rule = std::make_shared<Compiled>();
    rule->kind = Compiled::Kind::presence;
    rule->name = spec.name;
    rule->online_payload = spec.online_payload;
    rule->offline_payload = spec.offline_payload;
    check_name(spec.name, path);
    auto pattern = SourcePattern::compile_device(spec.source);
    if (!pattern) {
      sink.add(path + ".source", pattern.error());
    } else {
      rule->source = std::move(pattern).value();
      if (spec.uid.empty()) {
        sink.add(path + ".uid", "is empty: a presence rule needs the uid of the device");
      } else if (auto uid = Template::compile(spec.uid, rule->source); !uid) {
        sink.add(path + ".uid", uid.error());
      } else if (auto error = name_template_error(*uid, "uid")) {
        sink.add(path + ".uid", *error);
      } else {
        rule->uid = std::move(uid).value();
      }
    }
    if (spec.online_payload == spec.offline_payload) {
      sink.add(path + ".offline_payload", "equals online_payload " +
                                              detail::quoted(spec.online_payload) +
                                              ": the two states must differ");
    }
    if (sink.count() == errors_before) compiled_presence[i] = std::move(rule);
  }

  // Loops: no output may be read again by a rule of the set or by the gateway itself.
  struct Source {
    const std::string* name;
    std::string path;
    const std::string* filter;
  };
  std::vector<Source> sources;
  for (std::size_t j = 0; j < rules.size(); ++j) {
    if (compiled_rules[j]) {
      sources.push_back({&compiled_rules[j]->name, indexed("rules", j) + ".source",
                         &compiled_rules[j]->source.filter()});
    }
  }
  for (std::size_t j = 0; j < presence_rules.size(); ++j) {
    if (compiled_presence[j]) {
      sources.push_back({&compiled_presence[j]->name, indexed("presence", j) + ".source",
                         &compiled_presence[j]->source.filter()});
    }
  }
  for (std::size_t i = 0; i < rules.size(); ++i) {
    if (!compiled_rules[i]) continue;
    const std::string output = compiled_rules[i]->output_filter(prefix);
    const std::string path = indexed("rules", i) + ".target";
    for (const Source& source : sources) {
      if (filters_overlap(output, *source.filter)) {
        sink.add(path, "output \"" + output + "\" can match the source of rule \"" + *source.name +
                           "\" (" + source.path + "): that would loop");
      }
    }
    for (std::size_t k = 0; k < reserved_filters.size(); ++k) {
      if (filters_overlap(output, reserved_filters[k])) {
        sink.add(path, "output \"" + output + "\" can match \"" + reserved_filters[k] + "\" (" +
                           indexed("reserved_filters", k) +
                           "), which the gateway reads itself: that would loop");
      }
    }
  }

  if (!errors.empty()) return errors;

  RuleSet set;
  set.prefix_ = prefix;
  for (auto& rule : compiled_rules) set.rules_.push_back(std::move(rule));
  for (auto& rule : compiled_presence) set.rules_.push_back(std::move(rule));
  if (!set.rules_.empty()) {
    auto index = std::make_shared<Index>();
    for (std::uint32_t i = 0; i < set.rules_.size(); ++i) {
      const detail::SourceLevel& first = set.rules_[i]->source.levels().front();
      if (first.kind == detail::SourceLevel::Kind::literal) {
        index->by_first_level[first.literal].push_back(i);
      } else {
        index->wildcard_first.push_back(i);
      }
    }
    for (auto& [level, list] : index->by_first_level) {
      std::vector<std::uint32_t> merged;
      merged.reserve(list.size() + index->wildcard_first.size());
      std::merge(list.begin(), list.end(), index->wildcard_first.begin(),
                 index->wildcard_first.end(), std::back_inserter(merged));
      list = std::move(merged);
    }
    set.index_ = std::move(index);
  }
  return set;
}

std::vector<std::string> RuleSet::subscriptions() const {
  std::vector<std::string> unique;
  for (const auto& rule : rules_) {
    const std::string& filter = rule->source.filter();
    if (std::find(unique.begin(), unique.end(), filter) == unique.end()) unique.push_back(filter);
  }
  // A filter that another one covers would make the broker deliver a message twice.
  std::vector<std::string> filters;
  for (const std::string& filter : unique) {
    const bool covered = std::any_of(unique.begin(), unique.end(), [&](const std::string& other) {
      return other != filter && detail::filter_covers(other, filter);
    });
    if (!covered) filters.push_back(filter);
  }
  return filters;
}

bool RuleSet::empty() const {
  return rules_.empty();
}

std::vector<std::string> RuleSet::rule_names() const {
  std::vector<std::string> names;
  names.reserve(rules_.size());
  for (const auto& rule : rules_) names.push_back(rule->name);
  return names;
}

}  // namespace rtm::mapping

namespace rtm::mapping {
namespace {

// rapidjson takes some numbers beyond a double's range (2.5e309) as infinity without an
// error, and its writer then stops at them, leaving broken JSON behind: such a number is
// refused like any other the parser cannot hold. Nesting is bounded before this runs.
bool all_numbers_finite(const rapidjson::Value& v) {
  if (v.IsDouble()) return std::isfinite(v.GetDouble());
  if (v.IsArray()) {
    for (const auto& item : v.GetArray()) {
      if (!all_numbers_finite(item)) return false;
    }
  } else if (v.IsObject()) {
    for (const auto& member : v.GetObject()) {
      if (!all_numbers_finite(member.value)) return false;
    }
  }
  return true;
}

}  // namespace

std::optional<std::string> parse_untrusted_json(std::string_view payload, rapidjson::Document& document) {
  if (payload.size() > std::numeric_limits<rapidjson::SizeType>::max()) {
    return "payload is too large for JSON (" + std::to_string(payload.size()) + " bytes)";
  }
  std::size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (std::size_t i = 0; i < payload.size(); ++i) {
    const char c = payload[i];
    if (c == '\0') return "payload is not valid JSON: NUL byte at byte " + std::to_string(i);
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) {
        return "payload JSON is nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  document.Parse<rapidjson::kParseValidateEncodingFlag>(payload.data(), payload.size());
  if (document.HasParseError()) {
    return std::string("payload is not valid JSON: ") +
           rapidjson::GetParseError_En(document.GetParseError()) + " at byte " +
           std::to_string(document.GetErrorOffset());
  }
  if (!all_numbers_finite(document)) {
    document.SetNull();  // callers that only look at the document see nothing usable
    return "payload is not valid JSON: a number is beyond the range of a double";
  }
  return std::nullopt;
}

}  // namespace rtm::mapping
