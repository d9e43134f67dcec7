#include "rtm/gateway/log_entry.hpp"

#include <charconv>

namespace rtm::gateway::cluster {

namespace {

// Reads "{length}:" and the bytes after it from `in` at `pos`.
std::optional<std::string_view> next_part(std::string_view in, std::size_t& pos) {
  const auto colon = in.find(':', pos);
  if (colon == std::string_view::npos || colon == pos || colon - pos > 10) return std::nullopt;
  std::size_t length = 0;
  const auto [end, ec] = std::from_chars(in.data() + pos, in.data() + colon, length);
  if (ec != std::errc() || end != in.data() + colon) return std::nullopt;
  if (length > in.size() - colon - 1) return std::nullopt;
  pos = colon + 1 + length;
  return in.substr(colon + 1, length);
}

template <class T>
bool parse_number(std::string_view text, T& out, int base = 10) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string frame(const std::vector<std::pair<std::string, std::string>>& pairs) {
  std::string out;
  for (const auto& [field, value] : pairs) {
    for (const std::string* part : {&field, &value}) {
      out += std::to_string(part->size());
      out += ':';
      out += *part;
    }
  }
  return out;
}

rtm::Expected<LogEntry> parse_entry(std::string_view framed) {
  LogEntry entry;
  std::size_t pos = 0;
  while (pos < framed.size()) {
    const auto field = next_part(framed, pos);
    const auto value = field ? next_part(framed, pos) : std::nullopt;
    if (!field || !value) {
      return rtm::Error{"log entry: bad framing at byte " + std::to_string(pos)};
    }
    if (field->substr(0, kAnswerField.size()) == kAnswerField) {
      auto answer = decode_answer(*field, *value);
      if (!answer) return rtm::Error{"log entry: bad answer " + std::string(field->substr(0, 80))};
      entry.answers.push_back(std::move(*answer));
      continue;
    }
    replica::Row row{std::string(*field), std::nullopt};
    if (!value->empty()) row.value = std::string(*value);
    entry.rows.push_back(std::move(row));
  }
  return entry;
}

std::pair<std::string, std::string> encode_answer(const StoredAnswer& answer) {
  char hex[17];
  const auto [end, ec] = std::to_chars(hex, hex + 16, answer.fingerprint, 16);
  (void)ec;
  return {std::string(kAnswerField) + answer.uid + "/" + answer.msg_id,
          std::string(hex, end) + ":" + std::to_string(answer.at_ms) + ":" + answer.payload};
}

std::optional<StoredAnswer> decode_answer(std::string_view field, std::string_view value) {
  if (field.substr(0, kAnswerField.size()) != kAnswerField) return std::nullopt;
  field.remove_prefix(kAnswerField.size());
  const auto slash = field.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  const auto first = value.find(':');
  const auto second = first == std::string_view::npos ? first : value.find(':', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  StoredAnswer answer;
  answer.uid = std::string(field.substr(0, slash));
  answer.msg_id = std::string(field.substr(slash + 1));
  if (!parse_number(value.substr(0, first), answer.fingerprint, 16) ||
      !parse_number(value.substr(first + 1, second - first - 1), answer.at_ms)) {
    return std::nullopt;
  }
  answer.payload = std::string(value.substr(second + 1));
  return answer;
}

}  // namespace rtm::gateway::cluster
