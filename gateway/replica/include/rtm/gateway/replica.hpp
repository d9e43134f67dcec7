#pragma once
// The rows of the state model as values a shared backend stores and sends between the
// gateways of a cluster (docs/cluster.md): read the rows a turn changed from a MemoryStore,
// and apply rows another gateway wrote to this gateway's MemoryStore, so that its model
// becomes the same as the writer's. Pure: no I/O, no clock.
//
// A row is a field (its kind and key) and a value (the row encoded, or none: deleted).
// Fields: "s:{uid}" session (info, watches, message channels), "m:{channel}/{uid}" member
// (seq, channel token, topics, subscriptions), "p:{uid}" connection presence,
// "d:{u|c}/{name}" user or channel metadata, "w:{uid}" a user's metadata subscriptions,
// "l:{channel}" the channel's locks, "i:{id}" a kept peer message, "n:" the last inbox id,
// "v:{id}" a call invitation, "t:{channel}/{uid}" a member's presence states (shared between
// gateways, never written to disk). Names never hold '/', so a key splits at its first '/'; ids
// are decimal, without leading zeros, up to 2^63-1.
//
// A value is compact JSON with its version first: {"v":1,...}. Text that is not UTF-8
// (binary payloads, metadata values) goes base64 under the name with "_b64" appended
// ("payload_b64"). Metadata and locks carry the storage model's own records
// (storage::encode_metadata, storage::encode_locks) under "record". A gateway skips, and
// says, a value of a version above its own, as it does any row it cannot decode; members
// a value does not know are ignored, so that a version may add some.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "rtm/gateway/change_set.hpp"
#include "rtm/gateway/state.hpp"

namespace rtm::gateway::replica {

struct Row {
  std::string field;
  std::optional<std::string> value;  // none: the row is deleted
  bool operator==(const Row& o) const { return field == o.field && value == o.value; }
};

// The rows of `changes` as `store` holds them now, each changed key once (deleted where
// the model no longer has it).
std::vector<Row> read_rows(const MemoryStore& store, const ChangeSet& changes);

// Every row of `store` (the first gateway of a cluster writes its whole model; tests).
void for_each_row(const MemoryStore& store, const std::function<void(Row)>& visit);

// Applies rows written by another gateway, in an order that keeps the model whole (member
// deletions, session deletions, session puts, member puts by seq, the rest), without
// limits and without telling the store's ChangeListeners or its sub-stores' listeners.
// Each row replaces only its own data: a member row never changes other members'
// subscriptions (their rows carry them). A session deleted while member rows of it remain
// takes them along, with its metadata subscriptions. A deleted member loses its presence
// states in that channel, as leaving does (states are not rows). Sequences and the inbox
// and invitation id counters rise to the largest applied (deleted rows' ids too).
// `applied` (if given) gets the keys, also those a session deletion took along.
// A row that does not decode, or a member whose session is missing, is skipped; one
// message per skipped row comes back (empty: every row applied).
std::vector<std::string> apply_rows(MemoryStore& store, const std::vector<Row>& rows,
                                    ChangeSet* applied);

// Empties the model (before a full reload from the shared state), presence states too, as
// a restart would. The sequence and id counters stay: ids never repeat.
void clear(MemoryStore& store);

}  // namespace rtm::gateway::replica
