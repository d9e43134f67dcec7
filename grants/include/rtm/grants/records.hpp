#pragma once
// Grant records: how the gateway tells the broker who may read and write each channel
// level (docs/security.md, "Broker-enforced channels"). Text, one record per line, tokens
// separated by one space; names never contain a space, '+' or '#', so the markers below
// cannot be taken for a name. Every message starts with the format line.
//
//   rtm-grants 1                   format and version (first line of every message)
//   B <epoch>                      a full set begins: the records up to F build a new table
//   F <epoch>                      the full set is complete: it replaces the old table
//   S <uid>                        uid has a live RTM session
//   s <uid>                        uid has none
//   M <channel> <uid> [+<topic>]... [#<topic> [<publisher>]...]...
//                                  uid is a member of channel, publishes in each +topic and
//                                  reads the listed publishers of each #topic; replaces
//                                  everything known of that member
//   X <channel> <uid>              uid is no member of channel (nothing granted there)
//   C <uid> [<channel>|+<channel>]...
//                                  the message channels uid subscribes to: it reads
//                                  P/mc/{channel}/#, and with '+' also P/mcevents/{channel};
//                                  replaces everything known of uid's message channels
//   T <uid> <expires_at_s>         uid renewed its token: its connections may stay until then
//   K <uid>                        close every connection of uid
//   k <uid>                        close uid's connections but the one that sent its last login
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rtm::grants {

inline constexpr std::string_view kFormatLine = "rtm-grants 1";
// Records of one message stay under this many bytes (the broker's message_size_limit is
// larger); a record is never split across messages.
inline constexpr std::size_t kDefaultMessageBytes = 64 * 1024;
// A line longer than this is refused when read (a member with 64 publishers in many
// topics stays far below it).
inline constexpr std::size_t kMaxRecordBytes = 1024 * 1024;

// What a member may do in one channel. Lists sorted, no duplicates.
struct MemberGrants {
  std::vector<std::string> writes;  // topics it publishes in
  std::vector<std::pair<std::string, std::vector<std::string>>> reads;  // topic -> publishers
  bool operator==(const MemberGrants& o) const { return writes == o.writes && reads == o.reads; }
};

// The message channels one user subscribes to: (channel, with presence), sorted by channel.
using MessageChannelGrants = std::vector<std::pair<std::string, bool>>;

enum class RecordKind {
  sync_begin,        // B
  sync_end,          // F
  session_on,        // S
  session_off,       // s
  member,            // M
  no_member,         // X
  token,             // T
  kick,              // K
  kick_others,       // k
  message_channels,  // C
};

struct Record {
  RecordKind kind{};
  std::uint64_t number = 0;  // epoch (B, F) or expires_at_s (T)
  std::string channel;       // M, X
  std::string uid;           // S, s, M, X, T, K, k
  MemberGrants grants;       // M
  MessageChannelGrants message_channels;  // C
};

// Builds the messages of a batch of records, each under max_message_bytes.
class RecordWriter {
 public:
  explicit RecordWriter(std::size_t max_message_bytes = kDefaultMessageBytes)
      : max_bytes_(max_message_bytes) {}
  void sync_begin(std::uint64_t epoch) { line("B " + std::to_string(epoch)); }
  void sync_end(std::uint64_t epoch) { line("F " + std::to_string(epoch)); }
  void session(std::string_view uid, bool live);
  void member(std::string_view channel, std::string_view uid, const MemberGrants& grants);
  void no_member(std::string_view channel, std::string_view uid);
  void message_channels(std::string_view uid, const MessageChannelGrants& channels);
  void token(std::string_view uid, std::int64_t expires_at_s);
  void kick(std::string_view uid);
  void kick_others(std::string_view uid);
  void add(const Record& record);  // any record, as the calls above write it

  bool empty() const { return messages_.empty() && records_ == 0; }
  std::size_t records() const { return total_records_; }
  // The finished messages, in order; the writer is empty again.
  std::vector<std::string> take();

 private:
  void line(const std::string& text);
  std::size_t max_bytes_;
  std::string current_;
  std::size_t records_ = 0;  // in current_
  std::size_t total_records_ = 0;
  std::vector<std::string> messages_;
};

// Reads one message. Calls `visit` for each well-formed record in order and skips the
// others; returns the number of records skipped and the first reason (a message without
// the format line is skipped whole).
struct ReadResult {
  std::size_t records = 0;
  std::size_t skipped = 0;
  std::string first_error;
};
ReadResult read_records(std::string_view message, const std::function<void(Record&&)>& visit);

}  // namespace rtm::grants
