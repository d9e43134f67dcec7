#pragma once
// Metadata in the manner of RTM 2 storage: one model for a user's metadata and a channel's.
// A Metadata is a major revision and items by key; a write (set, update, remove) applied to
// it gives either an error value, and nothing changes, or the new Metadata and the Change
// to publish as an event. All items of a call or none.
//
// Semantics (README.md has the reasons and what RTM 2 documents):
// - set: creates or overwrites each given item and keeps the others (RTM 2's
//   setXxxMetadata; it does not drop the items the call leaves out).
// - update: overwrites existing items only; a key that does not exist is item_not_found.
// - remove: deletes the given keys, or every item when the call names none. A key that does
//   not exist is skipped (nothing to remove), unless its revision check fails.
// - Compare-and-set: revision -1 (kNoCheck) checks nothing; any other value must equal the
//   current revision, where a key that does not exist, and a metadata never written, have
//   revision 0. So revision 0 means "create only if absent" and major_revision 0 "only if
//   never written". A failed check names the key, the expected and the actual revision.
// - Revisions: every successful write that changes something adds 1 to the major revision,
//   and every item it writes takes the new major revision as its own revision. Revisions of
//   a key thus only grow, even across remove and re-create (removing every item keeps the
//   major revision), and a Redis script can apply a write atomically: check, HINCRBY, HSET.
// - A remove that removes nothing changes nothing: same major revision, empty Change.
// - record_author / record_ts: the written items carry the caller's uid / now_ms; without
//   them the written items carry none (an overwrite does not keep the old author).
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/storage/errors.hpp"
#include "rtm/storage/keys.hpp"

namespace rtm::storage {

// A revision (major or item) that a call leaves unchecked.
inline constexpr std::int64_t kNoCheck = -1;

struct Item {
  std::string key;
  std::string value;  // opaque bytes
  std::int64_t revision = 0;
  std::optional<std::string> author;          // uid of the last writer, when recorded
  std::optional<std::int64_t> updated_at_ms;  // when it was last written, when recorded
  bool operator==(const Item& o) const {
    return key == o.key && value == o.value && revision == o.revision && author == o.author &&
           updated_at_ms == o.updated_at_ms;
  }
};

struct Metadata {
  std::int64_t major_revision = 0;    // 0: never written
  std::map<std::string, Item> items;  // by key; items.at(k).key == k
  bool operator==(const Metadata& o) const {
    return major_revision == o.major_revision && items == o.items;
  }
};

// The limits, each a config key of the gateway (defaults: RTM 2's where it has one).
struct MetadataLimits {
  static constexpr std::string_view kMaxKeyBytesKey = "storage.max_key_bytes";
  static constexpr std::string_view kMaxValueBytesKey = "storage.max_value_bytes";
  static constexpr std::string_view kMaxCallBytesKey = "storage.max_call_bytes";
  static constexpr std::string_view kMaxItemsPerCallKey = "storage.max_items_per_call";
  static constexpr std::string_view kMaxItemsKey = "storage.max_items";
  static constexpr std::string_view kMaxMetadataBytesKey = "storage.max_metadata_bytes";
  static constexpr std::string_view kMaxUserMetadataKey = "storage.max_user_metadata";
  static constexpr std::string_view kMaxChannelMetadataKey = "storage.max_channel_metadata";

  std::size_t max_key_bytes = kDefaultMaxKeyBytes;
  std::size_t max_value_bytes = 64 * 1024;  // one item's value
  std::size_t max_call_bytes = 64 * 1024;   // keys and values of one call
  std::size_t max_items_per_call = 100;
  std::size_t max_items = 1000;                  // items of one metadata
  std::size_t max_metadata_bytes = 1024 * 1024;  // keys and values of one metadata
  // Users and channels with metadata, in all: a store's bound (a record stays when its
  // items are removed, so that its revisions keep growing).
  std::size_t max_user_metadata = 1000000;
  std::size_t max_channel_metadata = 100000;
};

enum class WriteKind { set, update, remove };
std::string_view write_kind_name(WriteKind kind);  // "set", "update", "remove"

struct ItemWrite {
  std::string key;
  std::string value;                 // ignored by remove
  std::int64_t revision = kNoCheck;  // expected current revision of the item
};

struct Write {
  WriteKind kind = WriteKind::set;
  std::vector<ItemWrite> items;  // remove: empty means every item
  std::int64_t major_revision = kNoCheck;
  bool record_author = false;
  bool record_ts = false;
};

// Who writes, and when: the uid recorded as author, the time recorded as updated_at_ms.
struct Caller {
  std::string uid;
  std::int64_t now_ms = 0;
};

// What a successful write changed, for the event and the response.
struct Change {
  WriteKind kind = WriteKind::set;
  std::int64_t major_revision = 0;  // after the write
  // set/update: the written items as stored now. remove: the removed items as they were.
  std::vector<Item> items;
  bool empty() const { return items.empty(); }
};

struct Applied {
  Metadata metadata;  // the new state
  Change change;
};

// Applies `write` to `current`: the new state and the change, or the first error found
// (checks in this order: call shape, keys, sizes of the call, major revision, items'
// revisions and existence, limits of the result).
Result<Applied> apply(const Metadata& current, const Write& write, const Caller& caller,
                      const MetadataLimits& limits = {});

// A read: every item (keys empty) or the named ones that exist, in key order.
std::vector<Item> snapshot(const Metadata& metadata, const std::vector<std::string>& keys = {});

// Bytes that count against the call and metadata limits: keys plus values.
std::size_t item_bytes(std::string_view key, std::string_view value);

}  // namespace rtm::storage
