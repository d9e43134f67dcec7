#pragma once
// Internal to rtm_mapping: compiled source patterns and target templates. Compilation
// reports problems as strings (the caller adds the key path); matching and expansion do
// not allocate beyond the output strings.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/topics/expected.hpp"

namespace rtm::mapping::detail {

// More captures than any sensible pattern needs; the bound lets route() keep them on the
// stack.
inline constexpr std::size_t kMaxCaptures = 16;
using Captures = std::array<std::string_view, kMaxCaptures>;

// Names an envelope field can use besides captures; a capture may not take them.
bool is_special_name(std::string_view name);
bool is_capture_name(std::string_view name);  // [A-Za-z_][A-Za-z0-9_]*

struct SourceLevel {
  enum class Kind { literal, capture, any_level, rest };
  Kind kind = Kind::literal;
  std::string literal;       // literal
  std::uint8_t capture = 0;  // capture: index into SourcePattern::capture_names
};

// A compiled source: the MQTT filter to subscribe to and the levels to match with.
class SourcePattern {
 public:
  // A device topic pattern: "coplay/{room}/{player}/input", "factory/+/temp", "a/#".
  static Expected<SourcePattern, std::string> compile_device(std::string_view pattern);

  // Appends levels to a pattern being assembled from parts (outbound RTM sources).
  void add_literal(std::string_view level);
  void add_any_level();
  // Error text when `name` is taken or there are too many captures.
  Expected<std::uint8_t, std::string> add_capture(std::string_view name);

  // Captures of `topic` in `captures` when it matches. Follows MQTT: a pattern starting
  // with a wildcard does not match a topic starting with '$'.
  bool match(std::string_view topic, Captures& captures) const;

  const std::string& filter() const { return filter_; }
  const std::vector<std::string>& capture_names() const { return capture_names_; }
  const std::vector<SourceLevel>& levels() const { return levels_; }
  // Index of a capture, or -1.
  int capture_index(std::string_view name) const;
  // "{room}, {player}" or "no captures", for error messages.
  std::string describe_captures() const;

 private:
  void append_filter_level(std::string_view level);

  std::vector<SourceLevel> levels_;
  std::vector<std::string> capture_names_;
  std::string filter_;
};

// One level of an outbound RTM source field ("room-7", "{room}" or "+"); `what` names
// the field in errors ("channel").
struct NameLevel {
  enum class Kind { literal, capture, any_level };
  Kind kind = Kind::literal;
  std::string text;  // literal text or capture name
};
Expected<NameLevel, std::string> parse_name_level(std::string_view text, std::string_view what);

// Text with {capture} placeholders. A '{' must open a placeholder "{name}"; a stray '{'
// or '}' is an error, so that typos do not turn into literal text silently.
struct TemplatePiece {
  std::string literal;  // when capture < 0
  int capture = -1;
};

class Template {
 public:
  // Splits `text` into pieces; names are checked by the caller.
  struct Token {
    std::string text;  // literal text, or a placeholder name
    bool placeholder = false;
  };
  static Expected<std::vector<Token>, std::string> tokenize(std::string_view text);

  // Compiles `text` against the captures of `source`. Errors: a stray brace, a capture
  // the source lacks. Literal content is checked by the caller.
  static Expected<Template, std::string> compile(std::string_view text,
                                                 const SourcePattern& source);

  bool has_captures() const { return has_captures_; }
  const std::vector<TemplatePiece>& pieces() const { return pieces_; }
  const std::string& text() const { return text_; }

  void expand_into(std::string& out, const Captures& captures) const;
  std::string expand(const Captures& captures) const;
  // The text with every piece holding a capture as one '+' level, when captures fill
  // whole levels; a level that mixes text and a capture also becomes '+'.
  std::string as_filter() const;

 private:
  std::vector<TemplatePiece> pieces_;
  std::string text_;
  std::size_t literal_bytes_ = 0;
  bool has_captures_ = false;
};

// True when every topic that `narrow` matches is matched by `wide` as well (both valid
// filters), including MQTT's rule that a leading wildcard skips '$' topics.
bool filter_covers(std::string_view wide, std::string_view narrow);

// A printable, bounded rendering of untrusted bytes for reasons and errors: quoted,
// non-printable bytes as \xNN, long values cut.
std::string quoted(std::string_view bytes);

}  // namespace rtm::mapping::detail
