#pragma once
// Records: the storage values as bytes a store writes and reads back. The structs
// themselves (Metadata and Item, StateItems, LockState) are the row shapes a store may
// keep field by field (sqlite tables, Redis hashes); these encodings are the one-blob form
// of each, binary-safe, versioned by their first line, and checked when read back.
//
// Format: a first line "rtm-<kind> 1\n", then fields, each "<decimal length>:<bytes>";
// numbers are decimal fields, an optional value is a field "0", or "1" and the value.
#include <string>
#include <string_view>
#include <vector>

#include "rtm/storage/errors.hpp"
#include "rtm/storage/locks.hpp"
#include "rtm/storage/metadata.hpp"
#include "rtm/storage/states.hpp"

namespace rtm::storage {

inline constexpr std::string_view kMetadataRecordLine = "rtm-metadata 1";
inline constexpr std::string_view kStatesRecordLine = "rtm-states 1";
inline constexpr std::string_view kLocksRecordLine = "rtm-locks 1";

std::string encode_metadata(const Metadata& metadata);
Result<Metadata> decode_metadata(std::string_view bytes);

std::string encode_states(const StateItems& states);
Result<StateItems> decode_states(std::string_view bytes);

std::string encode_locks(const std::vector<LockState>& locks);
Result<std::vector<LockState>> decode_locks(std::string_view bytes);

}  // namespace rtm::storage
