#include "rtm/storage/errors.hpp"
#include <utility>

namespace rtm::storage {

std::string_view error_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::no_items:
      return "no_items";
    case ErrorCode::invalid_key:
      return "invalid_key";
    case ErrorCode::duplicate_key:
      return "duplicate_key";
    case ErrorCode::invalid_revision:
      return "invalid_revision";
    case ErrorCode::major_revision_mismatch:
      return "major_revision_mismatch";
    case ErrorCode::item_revision_mismatch:
      return "item_revision_mismatch";
    case ErrorCode::item_not_found:
      return "item_not_found";
    case ErrorCode::too_many_items:
      return "too_many_items";
    case ErrorCode::value_too_large:
      return "value_too_large";
    case ErrorCode::call_too_large:
      return "call_too_large";
    case ErrorCode::metadata_too_large:
      return "metadata_too_large";
    case ErrorCode::too_many_states:
      return "too_many_states";
    case ErrorCode::states_too_large:
      return "states_too_large";
    case ErrorCode::invalid_ttl:
      return "invalid_ttl";
    case ErrorCode::lock_exists:
      return "lock_exists";
    case ErrorCode::lock_not_found:
      return "lock_not_found";
    case ErrorCode::lock_held:
      return "lock_held";
    case ErrorCode::not_lock_holder:
      return "not_lock_holder";
    case ErrorCode::too_many_locks:
      return "too_many_locks";
    case ErrorCode::too_many_waiters:
      return "too_many_waiters";
    case ErrorCode::corrupt_record:
      return "corrupt_record";
  }
  return "unknown";
}

Error make_error(ErrorCode code, std::string message, std::string_view limit, std::string key) {
  Error e;
  e.code = code;
  e.message = std::move(message);
  e.limit = limit;
  e.key = std::move(key);
  return e;
}

}  // namespace rtm::storage
