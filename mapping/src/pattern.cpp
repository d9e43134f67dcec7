#include "pattern.hpp"

#include <cstdio>

#include "rtm/topics/names.hpp"

namespace rtm::mapping::detail {
namespace {

constexpr std::string_view kSpecialNames[] = {"timestamp", "payload", "payload_base64",
                                              "payload_json", "topic"};

bool is_letter_or_underscore(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string at_byte(std::size_t offset) {
  return " at byte " + std::to_string(offset);
}

// Position of the next '/' or the end; levels of "a//b" are "a", "", "b".
std::size_t level_end(std::string_view text, std::size_t start) {
  const std::size_t slash = text.find('/', start);
  return slash == std::string_view::npos ? text.size() : slash;
}

// True when `level` holds a well-formed "{name}" somewhere (used to explain errors).
bool contains_placeholder(std::string_view level) {
  const std::size_t open = level.find('{');
  if (open == std::string_view::npos) return false;
  const std::size_t close = level.find('}', open);
  return close != std::string_view::npos &&
         is_capture_name(level.substr(open + 1, close - open - 1));
}

}  // namespace

bool is_special_name(std::string_view name) {
  for (std::string_view special : kSpecialNames) {
    if (name == special) return true;
  }
  return false;
}

bool is_capture_name(std::string_view name) {
  if (name.empty() || !is_letter_or_underscore(name.front())) return false;
  for (char c : name) {
    if (!is_letter_or_underscore(c) && !is_digit(c)) return false;
  }
  return true;
}

// ---- SourcePattern ----

void SourcePattern::append_filter_level(std::string_view level) {
  if (!levels_.empty()) filter_.push_back('/');
  filter_.append(level);
}

void SourcePattern::add_literal(std::string_view level) {
  SourceLevel compiled;
  compiled.kind = SourceLevel::Kind::literal;
  compiled.literal = std::string(level);
  append_filter_level(level);
  levels_.push_back(std::move(compiled));
}

void SourcePattern::add_any_level() {
  append_filter_level("+");
  levels_.push_back(SourceLevel{SourceLevel::Kind::any_level, {}, 0});
}

Expected<std::uint8_t, std::string> SourcePattern::add_capture(std::string_view name) {
  if (capture_index(name) >= 0) return "capture {" + std::string(name) + "} appears twice";
  if (capture_names_.size() >= kMaxCaptures) {
    return "has more than " + std::to_string(kMaxCaptures) + " captures";
  }
  const auto index = static_cast<std::uint8_t>(capture_names_.size());
  capture_names_.emplace_back(name);
  append_filter_level("+");
  levels_.push_back(SourceLevel{SourceLevel::Kind::capture, {}, index});
  return index;
}

Expected<SourcePattern, std::string> SourcePattern::compile_device(std::string_view pattern) {
  if (pattern.empty()) return std::string("is empty");
  if (auto bad = topics::utf8_error_offset(pattern)) {
    return "is not valid UTF-8" + at_byte(*bad);
  }
  if (const std::size_t nul = pattern.find('\0'); nul != std::string_view::npos) {
    return "contains U+0000" + at_byte(nul);
  }
  SourcePattern compiled;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = level_end(pattern, start);
    const std::string_view level = pattern.substr(start, end - start);
    const bool last = end == pattern.size();
    if (level.find_first_of("{}") != std::string_view::npos) {
      const bool whole =
          level.size() >= 2 && level.front() == '{' && level.back() == '}' &&
          level.substr(1, level.size() - 2).find_first_of("{}") == std::string_view::npos;
      if (!whole) {
        if (contains_placeholder(level)) {
          return "a capture must fill a whole level, not \"" + std::string(level) + "\"" +
                 at_byte(start);
        }
        return "level \"" + std::string(level) + "\"" + at_byte(start) +
               " has a '{' or '}' that is not part of a {capture}";
      }
      const std::string_view name = level.substr(1, level.size() - 2);
      if (!is_capture_name(name)) {
        return "capture " + std::string(level) + at_byte(start) +
               " has an invalid name (letters, digits and '_', not starting with a digit)";
      }
      if (is_special_name(name)) {
        return "capture " + std::string(level) +
               " uses a name reserved for envelope fields; choose another";
      }
      auto added = compiled.add_capture(name);
      if (!added) return added.error();
    } else if (level == "+") {
      compiled.add_any_level();
    } else if (level == "#") {
      if (!last) return "'#'" + at_byte(start) + " must be the last level";
      compiled.append_filter_level("#");
      compiled.levels_.push_back(SourceLevel{SourceLevel::Kind::rest, {}, 0});
    } else if (const std::size_t wildcard = level.find_first_of("+#");
               wildcard != std::string_view::npos) {
      return std::string("'") + level[wildcard] + "'" + at_byte(start + wildcard) +
             " must fill a whole level";
    } else {
      compiled.add_literal(level);
    }
    if (last) break;
    start = end + 1;
  }
  if (compiled.filter_.size() > topics::kMaxTopicBytes) {
    return "gives a filter longer than " + std::to_string(topics::kMaxTopicBytes) + " bytes";
  }
  return compiled;
}

bool SourcePattern::match(std::string_view topic, Captures& captures) const {
  if (!topic.empty() && topic.front() == '$' && !levels_.empty() &&
      levels_.front().kind != SourceLevel::Kind::literal) {
    return false;
  }
  std::size_t position = 0;
  bool topic_done = false;
  for (const SourceLevel& wanted : levels_) {
    if (wanted.kind == SourceLevel::Kind::rest) return true;  // "a/#" also matches "a"
    if (topic_done) return false;
    const std::size_t end = level_end(topic, position);
    const std::string_view level = topic.substr(position, end - position);
    if (end == topic.size()) {
      topic_done = true;
    } else {
      position = end + 1;
    }
    switch (wanted.kind) {
      case SourceLevel::Kind::literal:
        if (level != wanted.literal) return false;
        break;
      case SourceLevel::Kind::capture:
        captures[wanted.capture] = level;
        break;
      case SourceLevel::Kind::any_level:
      case SourceLevel::Kind::rest:
        break;
    }
  }
  return topic_done;
}

int SourcePattern::capture_index(std::string_view name) const {
  for (std::size_t i = 0; i < capture_names_.size(); ++i) {
    if (capture_names_[i] == name) return static_cast<int>(i);
  }
  return -1;
}

std::string SourcePattern::describe_captures() const {
  if (capture_names_.empty()) return "no captures";
  std::string text;
  for (const std::string& name : capture_names_) {
    if (!text.empty()) text += ", ";
    text += "{" + name + "}";
  }
  return text;
}

Expected<NameLevel, std::string> parse_name_level(std::string_view text, std::string_view what) {
  if (text.empty()) {
    return "is empty (use a " + std::string(what) + " name, a {capture} or \"+\")";
  }
  if (text == "+") return NameLevel{NameLevel::Kind::any_level, "+"};
  if (text.size() >= 2 && text.front() == '{' && text.back() == '}') {
    const std::string_view name = text.substr(1, text.size() - 2);
    if (!is_capture_name(name)) {
      return "capture " + std::string(text) +
             " has an invalid name (letters, digits and '_', not starting with a digit)";
    }
    if (is_special_name(name)) {
      return "capture " + std::string(text) +
             " uses a name reserved for envelope fields; choose another";
    }
    return NameLevel{NameLevel::Kind::capture, std::string(name)};
  }
  if (contains_placeholder(text)) {
    return "a capture must be the whole " + std::string(what) + ", not \"" + std::string(text) +
           "\"";
  }
  if (auto error = topics::name_error(text, what)) {
    return "is not a " + std::string(what) + " name, a {capture} or \"+\": " + *error;
  }
  return NameLevel{NameLevel::Kind::literal, std::string(text)};
}

// ---- Template ----

Expected<std::vector<Template::Token>, std::string> Template::tokenize(std::string_view text) {
  std::vector<Token> tokens;
  std::string literal;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '}') return "has a '}' without a '{'" + at_byte(i);
    if (c != '{') {
      literal.push_back(c);
      continue;
    }
    const std::size_t close = text.find('}', i + 1);
    const std::size_t next_open = text.find('{', i + 1);
    if (close == std::string_view::npos || next_open < close) {
      return "has a '{' without a '}'" + at_byte(i);
    }
    const std::string_view name = text.substr(i + 1, close - i - 1);
    if (!is_capture_name(name)) {
      return "has an invalid placeholder {" + std::string(name) + "}" + at_byte(i) +
             " (names are letters, digits and '_', not starting with a digit)";
    }
    if (!literal.empty()) tokens.push_back(Token{std::move(literal), false});
    literal.clear();
    tokens.push_back(Token{std::string(name), true});
    i = close;
  }
  if (!literal.empty()) tokens.push_back(Token{std::move(literal), false});
  return tokens;
}

Expected<Template, std::string> Template::compile(std::string_view text,
                                                  const SourcePattern& source) {
  auto tokens = tokenize(text);
  if (!tokens) return tokens.error();
  Template compiled;
  compiled.text_ = std::string(text);
  for (Token& token : *tokens) {
    if (!token.placeholder) {
      compiled.literal_bytes_ += token.text.size();
      compiled.pieces_.push_back(TemplatePiece{std::move(token.text), -1});
      continue;
    }
    const int index = source.capture_index(token.text);
    if (index < 0) {
      return "uses {" + token.text + "}, which the source does not capture (it has " +
             source.describe_captures() + ")";
    }
    compiled.has_captures_ = true;
    compiled.pieces_.push_back(TemplatePiece{{}, index});
  }
  return compiled;
}

void Template::expand_into(std::string& out, const Captures& captures) const {
  for (const TemplatePiece& piece : pieces_) {
    if (piece.capture < 0) {
      out.append(piece.literal);
    } else {
      out.append(captures[static_cast<std::size_t>(piece.capture)]);
    }
  }
}

std::string Template::expand(const Captures& captures) const {
  if (!has_captures_) return text_;
  std::size_t size = literal_bytes_;
  for (const TemplatePiece& piece : pieces_) {
    if (piece.capture >= 0) size += captures[static_cast<std::size_t>(piece.capture)].size();
  }
  std::string out;
  out.reserve(size);
  expand_into(out, captures);
  return out;
}

std::string Template::as_filter() const {
  std::string out;
  std::string level;
  bool level_has_capture = false;
  auto flush = [&] {
    out += level_has_capture ? std::string("+") : level;
    level.clear();
    level_has_capture = false;
  };
  for (const TemplatePiece& piece : pieces_) {
    if (piece.capture >= 0) {
      level_has_capture = true;
      continue;
    }
    for (char c : piece.literal) {
      if (c == '/') {
        flush();
        out.push_back('/');
      } else {
        level.push_back(c);
      }
    }
  }
  flush();
  return out;
}

// ---- helpers ----

std::string quoted(std::string_view bytes) {
  constexpr std::size_t kShown = 64;
  std::string out = "\"";
  for (std::size_t i = 0; i < bytes.size() && i < kShown; ++i) {
    const auto byte = static_cast<unsigned char>(bytes[i]);
    if (byte >= 0x20 && byte < 0x7F && byte != '"' && byte != '\\') {
      out.push_back(static_cast<char>(byte));
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", static_cast<unsigned>(byte));
      out += escaped;
    }
  }
  out.push_back('"');
  if (bytes.size() > kShown) out += "... (" + std::to_string(bytes.size()) + " bytes)";
  return out;
}

}  // namespace rtm::mapping::detail
