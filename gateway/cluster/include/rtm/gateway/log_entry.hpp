#pragma once
// One entry of the cluster's change log: the rows a turn wrote and the answers it gave, as
// the commit script frames them ("{length}:{bytes}" for each field and each value). Pure:
// the framing is read here, written by the script (redis_store.cpp).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/replica.hpp"
#include "rtm/topics/expected.hpp"

namespace rtm::gateway::cluster {

// Fields of answers start with this; the rest are rows (replica.hpp).
inline constexpr std::string_view kAnswerField = "a:";

struct LogEntry {
  std::vector<replica::Row> rows;
  std::vector<StoredAnswer> answers;
};

// "{length}:{bytes}" pairs, as the script joins them; an empty value deletes a row.
std::string frame(const std::vector<std::pair<std::string, std::string>>& pairs);
rtm::Expected<LogEntry> parse_entry(std::string_view framed);

// An answer as a field and value of the log: "a:{uid}/{msg_id}" and
// "{fingerprint hex}:{at_ms}:{payload}" (uids hold no '/').
std::pair<std::string, std::string> encode_answer(const StoredAnswer& answer);
std::optional<StoredAnswer> decode_answer(std::string_view field, std::string_view value);

}  // namespace rtm::gateway::cluster
