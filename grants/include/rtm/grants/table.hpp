#pragma once
// The broker's view of the gateway's grants, built from grant records (records.hpp), and
// the decision for one access check: who may read and write the channel levels of the
// topic tree. Every check is a few hash lookups and allocates nothing once warm, because
// the broker asks on every message it takes in and every message it delivers.
//
// The table fails closed: until a full set (B ... F) has arrived, every governed topic is
// refused. Records between B and F build a second table that replaces the first at F, so
// a gateway that sends its full set again (after either side restarted) never opens a gap.
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "rtm/grants/records.hpp"

namespace rtm::grants {

enum class Access { read, write };

enum class Verdict {
  not_governed,  // not a channel level: other rules (the ACL file) decide
  allow,
  deny,
};

// What a check was refused for, in words for the broker's debug log and the metrics.
std::string_view verdict_name(Verdict v);

// A connection side effect a record asks for (K, k, T); the table itself keeps none.
struct ConnectionAction {
  RecordKind kind{};  // kick, kick_others, token
  std::string uid;
  std::int64_t expires_at_s = 0;
};

struct TableStats {
  std::size_t sessions = 0;
  std::size_t members = 0;
  std::size_t streams = 0;       // (channel, topic, publisher) with a reader or its writer
  std::size_t read_grants = 0;   // (reader, stream) pairs
  std::size_t message_channel_subscriptions = 0;  // (subscriber, message channel) pairs
  std::uint64_t syncs = 0;       // full sets completed
  std::uint64_t records = 0;     // applied
  std::uint64_t skipped = 0;     // malformed or out of place
};

class Table {
 public:
  // `prefix`: topics.prefix, one or more levels ("rtm", "acme/rtm").
  explicit Table(std::string prefix);

  // Applies one message of records (read_records). Connection actions are returned, for
  // the caller to carry out; they are never part of the table. `read` (optional) gets the
  // count of records read and skipped and the first reason, for the caller's log.
  std::vector<ConnectionAction> apply_message(std::string_view message,
                                              ReadResult* read = nullptr);
  // Applies one record (tests, and the gateway's own copy of its table).
  void apply(Record&& record, std::vector<ConnectionAction>* actions = nullptr);

  // May `username` read (receive) or write (publish) `topic`? A topic name, never a filter.
  Verdict decide(std::string_view username, std::string_view topic, Access access) const;
  // decide(), and where it has no say, the topic tree's ownership rules for a token user
  // (the pattern lines of docker/mosquitto/acl): `allow` when they give `username` this
  // access to `topic` (its own requests, responses, events and inbox, its own presence and
  // everyone's presence), else not_governed. Lets the broker skip its ACL file for the
  // tree's own topics.
  Verdict decide_with_tree(std::string_view username, std::string_view topic,
                           Access access) const;
  // For brokers that check a filter once at SUBSCRIBE time (EMQX): a filter with a
  // wildcard in a channel level is refused, an exact topic is decided as a read.
  Verdict decide_subscribe(std::string_view username, std::string_view filter) const;

  bool synced() const { return synced_; }
  bool has_session(std::string_view uid) const;
  std::uint64_t epoch() const { return epoch_; }
  TableStats stats() const;

 private:
  using Id = std::uint32_t;
  // Names to small ids with reference counts; string_view keys point into slots that
  // never move (a deque), so a lookup by string_view allocates nothing.
  class Names {
   public:
    Id acquire(std::string_view name);
    void release(Id id);
    const Id* find(std::string_view name) const;
    std::size_t live() const { return index_.size(); }

   private:
    struct Slot {
      std::string name;
      std::uint32_t refs = 0;
    };
    std::deque<Slot> slots_;
    std::vector<Id> free_;
    std::unordered_map<std::string_view, Id> index_;
  };
  struct Stream {
    std::unordered_set<Id> readers;
    bool writable = false;  // its publisher publishes in this topic
    bool empty() const { return readers.empty() && !writable; }
  };
  struct Member {
    MemberGrants grants;
  };
  // One complete view: the live one, or the one a full set is building.
  struct View {
    Names names;
    std::unordered_set<Id> sessions;
    std::unordered_map<std::string, Stream> streams;  // "channel/topic/publisher"
    std::unordered_map<std::string, std::unordered_set<Id>> members;  // channel -> members
    std::unordered_map<std::string, Member> member_grants;  // "channel/uid"
    std::size_t read_grants = 0;
    // Message channels: channel -> subscribers, and those with presence; uid -> its record.
    std::unordered_map<std::string, std::unordered_set<Id>> mc_readers;
    std::unordered_map<std::string, std::unordered_set<Id>> mc_presence;
    std::unordered_map<std::string, MessageChannelGrants> mc_of;
    std::size_t mc_subscriptions = 0;
  };

  void apply_to(View& view, Record&& record);
  static void set_member(View& view, const std::string& channel, const std::string& uid,
                         const MemberGrants* grants);
  static void add_stream_grants(View& view, const std::string& channel, Id uid_id,
                                const std::string& uid, const MemberGrants& g, int sign);
  static Stream* stream(View& view, std::string_view key, bool create);
  static void set_message_channels(View& view, const std::string& uid,
                                   MessageChannelGrants&& channels);
  Verdict decide_message_channel(std::string_view username, std::string_view rest,
                                 Access access) const;

  std::string prefix_;
  View live_;
  std::unique_ptr<View> building_;  // between B and F
  std::uint64_t building_epoch_ = 0;
  bool synced_ = false;
  std::uint64_t epoch_ = 0;
  std::uint64_t syncs_ = 0;
  std::uint64_t records_ = 0;
  std::uint64_t skipped_ = 0;
  mutable std::string scratch_;  // lookup key, reused
};

}  // namespace rtm::grants
