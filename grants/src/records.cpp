#include "rtm/grants/records.hpp"

#include <charconv>
#include <limits>

#include "rtm/topics/names.hpp"

namespace rtm::grants {
namespace {

constexpr char kWriteMarker = '+';
constexpr char kReadMarker = '#';

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> tokens;
  std::size_t start = 0;
  while (start <= line.size()) {
    const auto end = line.find(' ', start);
    const auto stop = end == std::string_view::npos ? line.size() : end;
    tokens.push_back(line.substr(start, stop - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return tokens;
}

bool number(std::string_view text, std::uint64_t& out) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

bool name(std::string_view text, std::string& out) {
  if (!topics::is_valid_name(text)) return false;
  out.assign(text);
  return true;
}

// The M record's lists: "+topic" writes, "#topic" starts a read list, plain names are
// publishers of the last read list. Sorted and without duplicates, as the writer makes them.
bool member_lists(const std::vector<std::string_view>& tokens, std::size_t first,
                  MemberGrants& g, std::string& error) {
  for (std::size_t i = first; i < tokens.size(); ++i) {
    const auto token = tokens[i];
    if (!token.empty() && (token[0] == kWriteMarker || token[0] == kReadMarker)) {
      std::string topic;
      if (!name(token.substr(1), topic)) {
        error = "bad topic in a member record";
        return false;
      }
      if (token[0] == kWriteMarker) {
        if (!g.writes.empty() && !(g.writes.back() < topic)) {
          error = "write topics out of order";
          return false;
        }
        g.writes.push_back(std::move(topic));
      } else {
        if (!g.reads.empty() && !(g.reads.back().first < topic)) {
          error = "read topics out of order";
          return false;
        }
        g.reads.emplace_back(std::move(topic), std::vector<std::string>{});
      }
      continue;
    }
    std::string publisher;
    if (g.reads.empty() || !name(token, publisher)) {
      error = "bad publisher in a member record";
      return false;
    }
    auto& list = g.reads.back().second;
    if (!list.empty() && !(list.back() < publisher)) {
      error = "publishers out of order";
      return false;
    }
    list.push_back(std::move(publisher));
  }
  return true;
}

bool parse_line(std::string_view line, Record& r, std::string& error) {
  const auto tokens = split(line);
  if (tokens[0].size() != 1) {
    error = "unknown record";
    return false;
  }
  const char tag = tokens[0][0];
  auto arity = [&](std::size_t n) {
    if (tokens.size() == n) return true;
    error = std::string("record ") + tag + " takes " + std::to_string(n - 1) + " fields";
    return false;
  };
  switch (tag) {
    case 'B':
    case 'F':
      r.kind = tag == 'B' ? RecordKind::sync_begin : RecordKind::sync_end;
      if (!arity(2)) return false;
      if (!number(tokens[1], r.number)) return error = "bad epoch", false;
      return true;
    case 'S':
    case 's':
    case 'K':
    case 'k':
      r.kind = tag == 'S'   ? RecordKind::session_on
               : tag == 's' ? RecordKind::session_off
               : tag == 'K' ? RecordKind::kick
                            : RecordKind::kick_others;
      if (!arity(2)) return false;
      if (!name(tokens[1], r.uid)) return error = "bad uid", false;
      return true;
    case 'T':
      r.kind = RecordKind::token;
      if (!arity(3)) return false;
      if (!name(tokens[1], r.uid)) return error = "bad uid", false;
      // An expiry is a time in seconds: within what a signed 64-bit clock holds.
      if (!number(tokens[2], r.number) ||
          r.number > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return error = "bad expiry", false;
      }
      return true;
    case 'X':
      r.kind = RecordKind::no_member;
      if (!arity(3)) return false;
      if (!name(tokens[1], r.channel) || !name(tokens[2], r.uid)) {
        return error = "bad channel or uid", false;
      }
      return true;
    case 'C':
      r.kind = RecordKind::message_channels;
      if (tokens.size() < 2 || !name(tokens[1], r.uid)) return error = "bad uid", false;
      for (std::size_t i = 2; i < tokens.size(); ++i) {
        const bool presence = !tokens[i].empty() && tokens[i][0] == kWriteMarker;
        std::string channel;
        if (!name(presence ? tokens[i].substr(1) : tokens[i], channel)) {
          return error = "bad channel in a message channel record", false;
        }
        if (!r.message_channels.empty() && !(r.message_channels.back().first < channel)) {
          return error = "message channels out of order", false;
        }
        r.message_channels.emplace_back(std::move(channel), presence);
      }
      return true;
    case 'M':
      r.kind = RecordKind::member;
      if (tokens.size() < 3) return error = "record M takes a channel and a uid", false;
      if (!name(tokens[1], r.channel) || !name(tokens[2], r.uid)) {
        return error = "bad channel or uid", false;
      }
      return member_lists(tokens, 3, r.grants, error);
    default:
      error = "unknown record";
      return false;
  }
}

}  // namespace

void RecordWriter::line(const std::string& text) {
  // A new message when this record would not fit (a record longer than the limit goes
  // alone into a message of its own).
  const std::size_t needed = text.size() + 1;
  if (records_ > 0 && current_.size() + needed > max_bytes_) {
    messages_.push_back(std::move(current_));
    current_.clear();
    records_ = 0;
  }
  if (records_ == 0) {
    current_.assign(kFormatLine);
    current_ += '\n';
  }
  current_ += text;
  current_ += '\n';
  ++records_;
  ++total_records_;
}

void RecordWriter::session(std::string_view uid, bool live) {
  line(std::string(live ? "S " : "s ") + std::string(uid));
}

void RecordWriter::member(std::string_view channel, std::string_view uid, const MemberGrants& g) {
  std::string text = "M ";
  text += channel;
  text += ' ';
  text += uid;
  for (const auto& topic : g.writes) {
    text += ' ';
    text += kWriteMarker;
    text += topic;
  }
  for (const auto& [topic, publishers] : g.reads) {
    text += ' ';
    text += kReadMarker;
    text += topic;
    for (const auto& p : publishers) {
      text += ' ';
      text += p;
    }
  }
  line(text);
}

void RecordWriter::no_member(std::string_view channel, std::string_view uid) {
  line("X " + std::string(channel) + " " + std::string(uid));
}

void RecordWriter::message_channels(std::string_view uid, const MessageChannelGrants& channels) {
  std::string text = "C ";
  text += uid;
  for (const auto& [channel, presence] : channels) {
    text += ' ';
    if (presence) text += kWriteMarker;
    text += channel;
  }
  line(text);
}

void RecordWriter::token(std::string_view uid, std::int64_t expires_at_s) {
  line("T " + std::string(uid) + " " + std::to_string(expires_at_s < 0 ? 0 : expires_at_s));
}

void RecordWriter::kick(std::string_view uid) { line("K " + std::string(uid)); }
void RecordWriter::kick_others(std::string_view uid) { line("k " + std::string(uid)); }

void RecordWriter::add(const Record& r) {
  switch (r.kind) {
    case RecordKind::sync_begin: return sync_begin(r.number);
    case RecordKind::sync_end: return sync_end(r.number);
    case RecordKind::session_on: return session(r.uid, true);
    case RecordKind::session_off: return session(r.uid, false);
    case RecordKind::member: return member(r.channel, r.uid, r.grants);
    case RecordKind::no_member: return no_member(r.channel, r.uid);
    case RecordKind::token: return token(r.uid, static_cast<std::int64_t>(r.number));
    case RecordKind::kick: return kick(r.uid);
    case RecordKind::kick_others: return kick_others(r.uid);
    case RecordKind::message_channels:
      return message_channels(r.uid, r.message_channels);
  }
}

std::vector<std::string> RecordWriter::take() {
  if (records_ > 0) messages_.push_back(std::move(current_));
  current_.clear();
  records_ = 0;
  total_records_ = 0;
  auto out = std::move(messages_);
  messages_.clear();
  return out;
}

ReadResult read_records(std::string_view message, const std::function<void(Record&&)>& visit) {
  ReadResult result;
  const auto first_end = message.find('\n');
  if (message.substr(0, first_end) != kFormatLine) {
    result.skipped = 1;
    result.first_error = "not a grant message (the first line must be \"rtm-grants 1\")";
    return result;
  }
  std::size_t start = first_end == std::string_view::npos ? message.size() : first_end + 1;
  while (start < message.size()) {
    auto end = message.find('\n', start);
    if (end == std::string_view::npos) end = message.size();
    const auto line = message.substr(start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    Record record;
    std::string error;
    if (line.size() > kMaxRecordBytes) {
      error = "record longer than " + std::to_string(kMaxRecordBytes) + " bytes";
    } else if (parse_line(line, record, error)) {
      ++result.records;
      visit(std::move(record));
      continue;
    }
    if (result.skipped++ == 0) result.first_error = error;
  }
  return result;
}

}  // namespace rtm::grants
