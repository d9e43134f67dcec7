#pragma once
// What the storage operations (metadata, presence states, locks) share: the storage model's
// error values as wire errors, the parameters they read beyond Params' own, and who may
// read a channel's storage. Internal to rtm::gateway_storage.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/state.hpp"
#include "rtm/storage/errors.hpp"

namespace rtm::gateway::storage_ops {

// "\"key\"", for messages.
std::string quoted(std::string_view key);

// The storage model's error as a wire error. Call-shape errors are INVALID_PARAMETER; a
// refusal by a limit answers the limit's own code (LIMIT_METADATA, LIMIT_STATE or
// LIMIT_LOCKS, by its config key) and names the key in the message.
Failure wire_failure(const storage::Error& e);

// A revision: a JSON integer, or decimal digits (with '-' for -1) in a query; -1 or more.
Outcome<std::int64_t> revision_value(const json::Value& v, const std::string& what);

// `keys`: a JSON array of strings, or one key given in a query (keys may hold ',' and '/',
// so a query carries one key; several go in the body). Empty when absent.
Outcome<std::vector<std::string>> keys_param(const Params& params);

// Whether the channel's name matches channels.public_presence.
bool public_presence(const Config& config, const std::string& channel);

// Who reads a channel's storage (metadata, states, locks) as who_now is read: members,
// anyone for channels.public_presence channels, operators. NOT_JOINED otherwise; `what`
// names the data for the message ("its metadata").
std::optional<Failure> channel_read_refusal(const Core& core, const StateStore& state,
                                            const std::string& uid, const std::string& channel,
                                            std::string_view what);

}  // namespace rtm::gateway::storage_ops
