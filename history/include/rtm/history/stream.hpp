#pragma once
// The history of one stream (a channel topic): its last messages, each with the stream's
// offset (1, 2, ... in the order the gateway read them), the publisher's own sequence
// number in the stream (1, 2, ... per publisher) and the time. An epoch names one unbroken
// run of offsets: a stream that lost its history (a gateway restart, a reset) starts a new
// epoch, and positions from another epoch cannot be trusted.
//
// Why per-publisher sequence numbers: the data plane is unchanged (raw bytes straight from
// the publisher to the broker to subscribers), and MQTT orders a publisher's messages on
// its topic but not messages of different publishers. A subscriber therefore sees each
// publisher's messages in the gateway's order and can count them, while the interleaving
// of publishers may differ. A subscriber's position is, per publisher, the sequence number
// it believes it reached and the hash (FNV-1a 64) of the last payload it got: the hash
// corrects a count that is off (a QoS 0 message lost on one side, a subscription that
// started between two messages). docs/protocol.md ("History") has the contract.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rtm::history {

struct Limits {
  std::size_t max_messages = 1000;        // per stream
  std::int64_t max_age_ms = 300'000;      // per stream
  std::size_t max_bytes = 4 << 20;        // payload bytes per stream
  std::size_t max_message_bytes = 65536;  // bigger ones keep their place, without payload
};

struct Entry {
  std::uint64_t offset = 0;
  std::string publisher;
  std::uint64_t seq = 0;
  std::int64_t ts_ms = 0;
  std::string payload;
  std::uint64_t hash = 0;  // FNV-1a 64 of the payload as published
  bool too_large = false;  // over max_message_bytes: its payload is not kept
};

// Where a subscriber is in one publisher's messages.
struct Position {
  std::string publisher;
  std::optional<std::uint64_t> seq;   // the last seq it got (0: none yet); absent: unknown
  std::optional<std::uint64_t> hash;  // hash of the last payload it got
};

struct Query {
  std::optional<std::string> epoch;      // the epoch the positions/offset are from
  std::optional<std::uint64_t> since;    // entries with offset > since
  std::optional<std::int64_t> since_ms;  // entries with ts_ms > since_ms
  std::vector<Position> positions;       // entries after each publisher's position
  std::vector<std::string> publishers;   // only these publishers (empty: all)
  std::optional<std::uint64_t> after;    // page cursor: offsets > after (forward)
  std::optional<std::uint64_t> before;   // page cursor: offsets < before (reverse)
  std::size_t limit = 100;
  bool reverse = false;  // newest first (without since/positions: the latest `limit`)
};

// The newest entry of a publisher that the stream has counted.
struct PublisherTop {
  std::uint64_t seq = 0;
  std::uint64_t hash = 0;
  std::uint64_t offset = 0;
};

struct Page {
  std::string epoch;
  std::uint64_t top = 0;     // the newest offset (0: none yet)
  std::uint64_t oldest = 0;  // the oldest offset kept (top + 1 when nothing is kept)
  // Every message after the asked position is in this page or the next ones: the epoch
  // matched, nothing after the position was dropped (age, size, a gap in the gateway's
  // reading) and every publisher's position was found.
  bool complete = true;
  bool more = false;  // limit reached: ask again after the last entry
  std::vector<const Entry*> entries;
  // Per publisher named in the positions or present in the page: its newest entry.
  std::map<std::string, PublisherTop> publishers;
  // Publishers whose position's seq did not match its hash and was found elsewhere, or not
  // at all (for diagnosis; the caller counts them).
  std::size_t realigned = 0;
};

class Stream {
 public:
  Stream(std::string epoch, Limits limits) : epoch_(std::move(epoch)), limits_(limits) {}

  const std::string& epoch() const { return epoch_; }
  std::uint64_t top() const { return top_; }
  std::uint64_t oldest() const { return entries_.empty() ? top_ + 1 : entries_.front().offset; }
  std::size_t size() const { return entries_.size(); }
  std::size_t bytes() const { return bytes_; }
  std::int64_t last_write_ms() const { return last_write_ms_; }

  // Appends a message; returns its entry. Drops what the limits no longer allow.
  const Entry& append(std::string_view publisher, std::string_view payload, std::int64_t now_ms);
  // Drops entries older than max_age. Returns the payload bytes freed.
  std::size_t trim(std::int64_t now_ms);
  // The gateway may have missed messages (its broker connection dropped): a position at or
  // before the current top can no longer be recovered completely.
  void mark_gap(std::int64_t now_ms) {
    gap_after_ = top_;
    gap_ms_ = now_ms;
  }
  void set_limits(Limits limits) { limits_ = limits; }
  // Drops the oldest entry (the bound on all streams' bytes). Its place is not recoverable.
  void drop_oldest() { drop_front(); }

  Page read(const Query& query, std::int64_t now_ms);

 private:
  std::uint64_t start_after(const Position& p, bool same_epoch, Page& page) const;
  bool crosses_gap(std::uint64_t offset) const { return gap_after_ && offset <= *gap_after_; }
  void drop_front();

  std::string epoch_;
  Limits limits_;
  std::deque<Entry> entries_;
  std::map<std::string, PublisherTop, std::less<>> tops_;
  std::uint64_t top_ = 0;
  // Set when the gateway may have missed messages after this offset.
  std::optional<std::uint64_t> gap_after_;
  std::int64_t gap_ms_ = 0;
  std::int64_t dropped_until_ms_ = 0;  // the time of the newest entry dropped
  std::size_t bytes_ = 0;
  std::int64_t last_write_ms_ = 0;
};

// The hash positions carry: FNV-1a 64 of the payload.
std::uint64_t payload_hash(std::string_view payload);

}  // namespace rtm::history
