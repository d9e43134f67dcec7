#pragma once
// Error values of the storage model. The names are stable: the gateway maps each code to a
// wire error name (docs/protocol.md) and the SDK/CLI show them, so a code is never renamed
// or reused once released; new codes are appended.
#include <cstdint>
#include <string>
#include <string_view>

#include "rtm/topics/expected.hpp"

namespace rtm::storage {

enum class ErrorCode {
  // The call itself.
  no_items,          // set/update/remove-by-key/set_state with an empty list
  invalid_key,       // a metadata or state key (or lock name) breaks the key rules
  duplicate_key,     // the same key twice in one call
  invalid_revision,  // a revision below -1
  // Compare-and-set.
  major_revision_mismatch,  // the call's major_revision is not the current one
  item_revision_mismatch,   // an item's revision is not that item's current one
  item_not_found,           // update of a key that does not exist
  // Limits (Error::limit names the config key).
  too_many_items,      // items in one call, or in one metadata after the call
  value_too_large,     // one item's (or state's) value
  call_too_large,      // all keys and values of one call
  metadata_too_large,  // all keys and values of one metadata after the call
  too_many_states,     // state keys of one user in one channel
  states_too_large,    // all state keys and values of one user in one channel
  // Locks.
  invalid_ttl,       // a lock ttl outside [min, max] seconds
  lock_exists,       // set_lock of a name that is already set
  lock_not_found,    // a lock name that is not set
  lock_held,         // acquire without retry while another uid holds it
  not_lock_holder,   // release/revoke of a lock the uid does not hold
  too_many_locks,    // locks of one channel
  too_many_waiters,  // uids queued for one lock
  // Records.
  corrupt_record,  // a stored record that does not decode
};

// "major_revision_mismatch": the code's stable name.
std::string_view error_name(ErrorCode code);

struct Error {
  ErrorCode code{};
  std::string message;  // one sentence for the response's "message"
  // The config key of the limit that refused the call ("storage.max_value_bytes"), if any.
  std::string_view limit;
  // What failed, for precise answers: the key (or lock name), and for revision checks the
  // revision the call expected and the one found (0 when the key does not exist).
  std::string key;
  std::int64_t expected = 0;
  std::int64_t actual = 0;
};

// An Error with what most refusals carry: the code, the sentence, the limit's config key
// and the key that failed (revisions are set by the revision checks themselves).
Error make_error(ErrorCode code, std::string message, std::string_view limit = {},
                 std::string key = {});

template <class T>
using Result = rtm::Expected<T, Error>;

}  // namespace rtm::storage
