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
// "v:{id}" a call invitation. Names never hold '/', so a key splits at its first '/'.
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
// deletions before session deletions, sessions before members), without limits and
// without telling the store's ChangeListeners. `applied` (if given) gets the keys.
// A row that does not decode is skipped; one message per skipped row comes back (empty:
// every row applied).
std::vector<std::string> apply_rows(MemoryStore& store, const std::vector<Row>& rows,
                                    ChangeSet* applied);

// Empties the model (before a full reload from the shared state).
void clear(MemoryStore& store);

}  // namespace rtm::gateway::replica
