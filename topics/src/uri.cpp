#include "rtm/topics/uri.hpp"

#include <algorithm>
#include <unordered_set>

#include "rtm/topics/names.hpp"
#include "rtm/util/ascii.hpp"

namespace rtm::topics {
namespace {

constexpr std::string_view kHexDigitRule = "'%' must be followed by two hex digits";

std::string at_byte(std::size_t offset) {
  return " at byte " + std::to_string(offset);
}

// Client text longer than this is cut short in messages.
constexpr std::size_t kMaxShown = 64;

// Quotes client text for a message, cut short (on a character boundary) so that a 60 KB key
// does not make a 60 KB error.
std::string quoted(std::string_view text) {
  if (text.size() <= kMaxShown) return "\"" + std::string(text) + "\"";
  std::size_t cut = kMaxShown;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return "\"" + std::string(text.substr(0, cut)) + "...\" (" + std::to_string(text.size()) +
         " bytes)";
}

// A single byte for a message: "'x'" when printable ASCII, else "byte 0xc3", so that a message
// never carries a fragment of a multi-byte character.
std::string describe_byte(char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte >= 0x20 && byte < 0x7F) return std::string("'") + c + "'";
  static constexpr char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[byte >> 4] + kHex[byte & 0x0F];
}

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
bool is_valid_scheme(std::string_view scheme) {
  if (scheme.empty() || !is_alpha(scheme.front())) return false;
  for (char c : scheme) {
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

// Checks the escapes of `text` (which starts at `base` in the whole reference): every '%'
// followed by two hex digits, and no %00, which would smuggle a NUL into names.
std::optional<std::string> escape_error(std::string_view text, std::size_t base,
                                        std::string_view subject) {
  for (std::size_t i = text.find('%'); i != std::string_view::npos; i = text.find('%', i + 1)) {
    if (text.size() - i < 3 || hex_value(text[i + 1]) < 0 || hex_value(text[i + 2]) < 0) {
      return std::string(subject) + " has a bad percent-escape" + at_byte(base + i) + ": " +
             std::string(kHexDigitRule);
    }
    if (text[i + 1] == '0' && text[i + 2] == '0') {
      return std::string(subject) + " has the percent-escape %00 (NUL)" + at_byte(base + i) +
             ", which is not allowed";
    }
  }
  return std::nullopt;
}

// Decodes `text` whose escapes escape_error() accepted. When the result is not valid UTF-8,
// returns the offset in `text` of the escape or byte that starts the bad sequence.
Expected<std::string> decode_checked(std::string_view text, std::size_t base,
                                     std::string_view subject) {
  std::string decoded;
  decoded.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      decoded.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
      i += 2;
    } else {
      decoded.push_back(text[i]);
    }
  }
  const auto bad = utf8_error_offset(decoded);
  if (!bad) return decoded;
  // Map the offset in the decoded text back to the raw text: each escape is 3 raw bytes.
  std::size_t raw = 0;
  for (std::size_t d = 0; d < *bad; ++d) raw += text[raw] == '%' ? 3 : 1;
  return Error{std::string(subject) + " is not valid UTF-8 once percent-decoded" +
               at_byte(base + raw)};
}

Expected<std::string> decode_component(std::string_view text, std::size_t base,
                                       std::string_view subject) {
  if (auto error = escape_error(text, base, subject)) return Error{*error};
  return decode_checked(text, base, subject);
}

// reg-name restricted to what routing rules and node ids need, or an IP literal "[...]".
std::optional<std::string> host_error(std::string_view host, std::size_t base) {
  if (host.empty()) return "uri has an empty host" + at_byte(base);
  if (host.front() == '[') {
    if (host.size() < 2 || host.back() != ']') {
      return "uri has an IP literal host without its closing ']'" + at_byte(base);
    }
    if (host.size() == 2) return "uri has an empty IP literal host" + at_byte(base);
    for (std::size_t i = 1; i + 1 < host.size(); ++i) {
      const char c = host[i];
      if (hex_value(c) < 0 && c != ':' && c != '.') {
        return "uri host " + quoted(host) + " has " + describe_byte(c) + " in its IP literal" +
               at_byte(base + i);
      }
    }
    return std::nullopt;
  }
  for (std::size_t i = 0; i < host.size(); ++i) {
    const char c = host[i];
    if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '.' && c != '_' && c != '~') {
      return "uri host " + quoted(host) + " contains " + describe_byte(c) + at_byte(base + i) +
             " (a host is letters, digits, '-', '.', '_' or '~')";
    }
  }
  return std::nullopt;
}

std::optional<std::string> port_error(std::string_view port, std::size_t base, int& value) {
  if (port.empty()) return "uri has an empty port after ':'" + at_byte(base) + " (must be 1-65535)";
  long parsed = 0;
  for (char c : port) {
    if (!is_digit(c)) {
      return "uri has a bad port " + quoted(port) + at_byte(base) + " (must be 1-65535)";
    }
    if (parsed <= 65535) parsed = parsed * 10 + (c - '0');  // stop growing once out of range
  }
  if (parsed < 1 || parsed > 65535) {
    return "uri has a bad port " + quoted(port) + at_byte(base) + " (must be 1-65535)";
  }
  value = static_cast<int>(parsed);
  return std::nullopt;
}

// "//authority" of an absolute URI, `authority` without the "//", starting at `base`.
std::optional<std::string> parse_authority(std::string_view authority, std::size_t base, Uri& uri) {
  std::size_t host_start = 0;
  // The last '@' ends the userinfo, as Go's net/url (which mqant uses) does.
  const std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    uri.userinfo = std::string(authority.substr(0, at));
    host_start = at + 1;
  }
  std::string_view host_port = authority.substr(host_start);
  std::size_t port_colon = std::string_view::npos;
  if (!host_port.empty() && host_port.front() == '[') {
    const std::size_t close = host_port.find(']');
    if (close != std::string_view::npos && close + 1 < host_port.size()) {
      if (host_port[close + 1] != ':') {
        return "uri has unexpected text after the IP literal host" +
               at_byte(base + host_start + close + 1);
      }
      port_colon = close + 1;
    }
  } else {
    port_colon = host_port.rfind(':');
  }
  const std::string_view host = host_port.substr(0, port_colon);
  if (auto error = host_error(host, base + host_start)) return error;
  uri.host = util::ascii_lower(host);
  if (port_colon != std::string_view::npos) {
    int port = 0;
    const std::size_t port_base = base + host_start + port_colon + 1;
    if (auto error = port_error(host_port.substr(port_colon + 1), port_base, port)) return error;
    uri.port = port;
  }
  return std::nullopt;
}

std::optional<std::string> parse_query(std::string_view query, std::size_t base, Uri& uri) {
  std::unordered_set<std::string> seen;
  std::size_t pair_start = 0;
  while (pair_start <= query.size()) {
    std::size_t pair_end = query.find('&', pair_start);
    if (pair_end == std::string_view::npos) pair_end = query.size();
    const std::string_view pair = query.substr(pair_start, pair_end - pair_start);
    const std::size_t pair_base = base + pair_start;
    pair_start = pair_end + 1;
    if (pair.empty()) continue;  // "?&&msg_id=1": empty pairs carry nothing

    const std::size_t equals = pair.find('=');
    const std::string_view raw_key = pair.substr(0, equals);
    if (raw_key.empty()) {
      return "uri query has a parameter with an empty name" + at_byte(pair_base);
    }
    auto key = decode_checked(raw_key, pair_base, "uri query parameter name");
    if (!key) return key.error().message;
    std::string value;
    if (equals != std::string_view::npos) {
      auto decoded = decode_checked(pair.substr(equals + 1), pair_base + equals + 1,
                                    "uri query parameter " + quoted(*key));
      if (!decoded) return decoded.error().message;
      value = std::move(*decoded);
    }
    if (!seen.insert(*key).second) return "uri query parameter " + quoted(*key) + " is given twice";
    uri.params.push_back(QueryParam{std::move(*key), std::move(value)});
  }
  return std::nullopt;
}

// Splits "path;params" of either kind of reference; `path` is percent-decoded.
std::optional<std::string> parse_path(std::string_view text, std::size_t base, Uri& uri) {
  const std::size_t semicolon = text.find(';');
  if (semicolon != std::string_view::npos) {
    uri.path_params = std::string(text.substr(semicolon + 1));
  }
  auto path = decode_checked(text.substr(0, semicolon), base, "uri path");
  if (!path) return path.error().message;
  uri.path = std::move(*path);
  return std::nullopt;
}

}  // namespace

const std::string* Uri::param(std::string_view key) const {
  for (const QueryParam& p : params) {
    if (p.key == key) return &p.value;
  }
  return nullptr;
}

Expected<std::string> percent_decode(std::string_view text) {
  return decode_component(text, 0, "text");
}

Expected<Uri> parse_uri(std::string_view reference) {
  if (reference.empty()) return Error{"uri is empty"};
  if (auto bad = utf8_error_offset(reference)) {
    return Error{"uri is not valid UTF-8" + at_byte(*bad)};
  }
  const std::size_t nul = reference.find('\0');
  if (nul != std::string_view::npos) return Error{"uri contains U+0000" + at_byte(nul)};
  const std::size_t hash = reference.find('#');
  if (hash != std::string_view::npos) {
    return Error{"uri has a '#' fragment" + at_byte(hash) +
                 "; fragments are not allowed ('#' is an MQTT wildcard)"};
  }
  // Checked once over the whole reference so that even the raw parts (userinfo, path params)
  // cannot carry a broken escape.
  if (auto error = escape_error(reference, 0, "uri")) return Error{*error};

  Uri uri;
  uri.raw = std::string(reference);
  const std::size_t question = reference.find('?');
  const std::string_view before_query = reference.substr(0, question);

  // RFC 3986 §4.2: only a ':' in the first segment can end a scheme. A first segment like
  // "a_b:c" is not a scheme, so it stays a relative path, unless "://" shows the sender meant
  // an absolute URI.
  std::size_t colon = before_query.find(':');
  if (colon > before_query.find('/')) colon = std::string_view::npos;  // a ':' later in the path
  std::size_t authority_start = 0;  // absolute only: just after "scheme://"
  if (colon != std::string_view::npos) {
    const std::string_view scheme = before_query.substr(0, colon);
    const bool has_authority = before_query.substr(colon + 1, 2) == "//";
    if (is_valid_scheme(scheme)) {
      uri.absolute = true;
      uri.scheme = util::ascii_lower(scheme);
      if (!has_authority) {
        // The example repeats the scheme only when it is short enough to be shown whole.
        const std::string example = uri.scheme.size() <= kMaxShown ? uri.scheme : "scheme";
        return Error{"uri with scheme " + quoted(uri.scheme) + " has no host (expected \"" +
                     example + "://host/...\")"};
      }
      authority_start = colon + 3;
    } else if (has_authority) {
      if (scheme.empty()) return Error{std::string("uri has an empty scheme before \"://\"")};
      return Error{"uri has an invalid scheme " + quoted(scheme) +
                   " (a scheme is a letter followed by letters, digits, '+', '-' or '.')"};
    }
  }

  if (uri.absolute) {
    std::size_t authority_end = before_query.find('/', authority_start);
    if (authority_end == std::string_view::npos) authority_end = before_query.size();
    const std::string_view authority =
        before_query.substr(authority_start, authority_end - authority_start);
    if (auto error = parse_authority(authority, authority_start, uri)) return Error{*error};
    // The path is given without its leading '/': "im://modulus/x" has the path "x".
    const std::size_t path_start = std::min(authority_end + 1, before_query.size());
    if (auto error = parse_path(before_query.substr(path_start), path_start, uri)) {
      return Error{*error};
    }
  } else {
    if (auto error = parse_path(before_query, 0, uri)) return Error{*error};
    if (uri.path.empty()) {
      return Error{std::string("uri has an empty path (expected an operation such as \"join\")")};
    }
  }

  if (question != std::string_view::npos) {
    uri.query = std::string(reference.substr(question + 1));
    if (auto error = parse_query(uri.query, question + 1, uri)) return Error{*error};
  }
  if (const std::string* msg_id = uri.param("msg_id")) uri.msg_id = *msg_id;
  return uri;
}

}  // namespace rtm::topics
