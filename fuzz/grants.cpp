// Fuzz target: grant records (grants/src/records.cpp) and the broker's table built from them
// (grants/src/table.cpp). The Mosquitto plugin reads these messages inside the broker, so a
// message must never crash it or leave a table that answers differently from the same
// records written out again; and the access checks take any topic a client sends.
//
// Input: the first line is a topic and a username (split at the first space) to check; the
// rest is a grant message (the format line is put in front when the input lacks it).
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "check.hpp"
#include "rtm/grants/records.hpp"
#include "rtm/grants/table.hpp"

namespace {

using rtm::grants::Access;
using rtm::grants::Record;
using rtm::grants::RecordKind;
using rtm::grants::Table;
using rtm::grants::Verdict;

constexpr std::size_t kMaxProbeNames = 6;

void remember(std::set<std::string>& names, const std::string& name) {
  if (!name.empty() && names.size() < kMaxProbeNames) names.insert(name);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto [probe, rest] = rtm::fuzz::split_line(rtm::fuzz::text(data, size));
  std::string message(rest);
  if (message.rfind(rtm::grants::kFormatLine, 0) != 0) {
    message = std::string(rtm::grants::kFormatLine) + "\n" + message;
  }

  // Every record read back is written again the same way.
  std::vector<Record> records;
  rtm::grants::read_records(message, [&](Record&& r) { records.push_back(std::move(r)); });
  rtm::grants::RecordWriter again;
  for (const auto& r : records) again.add(r);
  std::vector<Record> reread;
  for (const auto& m : again.take()) {
    const auto result = rtm::grants::read_records(m, [&](Record&& r) { reread.push_back(std::move(r)); });
    RTM_FUZZ_CHECK(result.skipped == 0, "a written record is read back");
  }
  RTM_FUZZ_CHECK(reread.size() == records.size(), "as many records read back as written");
  for (std::size_t i = 0; i < records.size() && i < reread.size(); ++i) {
    const auto& a = records[i];
    const auto& b = reread[i];
    RTM_FUZZ_CHECK(a.kind == b.kind && a.number == b.number && a.channel == b.channel &&
                       a.uid == b.uid && a.grants == b.grants,
                   "a record round-trips");
  }

  // The table from the message and the table from the records written again agree.
  Table first("rtm");
  Table second("rtm");
  const auto actions = first.apply_message(message);
  for (auto r : records) second.apply(std::move(r));
  std::size_t connection_records = 0;
  std::set<std::string> users, channels, topics;
  for (const auto& r : reread) {
    if (r.kind == RecordKind::kick || r.kind == RecordKind::kick_others ||
        r.kind == RecordKind::token) {
      ++connection_records;
    }
    remember(users, r.uid);
    remember(channels, r.channel);
    for (const auto& t : r.grants.writes) remember(topics, t);
    for (const auto& [t, publishers] : r.grants.reads) {
      remember(topics, t);
      for (const auto& p : publishers) remember(users, p);
    }
  }
  RTM_FUZZ_CHECK(actions.size() == connection_records, "every connection record is an action");
  RTM_FUZZ_CHECK(first.synced() == second.synced(), "both tables are synced alike");
  for (const auto& reader : users) {
    for (const auto& channel : channels) {
      const std::string events = "rtm/events/" + channel;
      RTM_FUZZ_CHECK(first.decide(reader, events, Access::read) ==
                         second.decide(reader, events, Access::read),
                     "events decided alike");
      for (const auto& topic : topics) {
        for (const auto& publisher : users) {
          const std::string stream = "rtm/ch/" + channel + "/" + topic + "/" + publisher;
          const auto read = first.decide(reader, stream, Access::read);
          RTM_FUZZ_CHECK(read == second.decide(reader, stream, Access::read), "reads alike");
          RTM_FUZZ_CHECK(read != Verdict::not_governed, "channel data is always governed");
          RTM_FUZZ_CHECK(first.synced() || read == Verdict::deny, "closed until synced");
          RTM_FUZZ_CHECK(first.decide(publisher, stream, Access::write) ==
                             second.decide(publisher, stream, Access::write),
                         "writes alike");
          if (reader != publisher) {
            RTM_FUZZ_CHECK(first.decide(reader, stream, Access::write) == Verdict::deny,
                           "nobody writes as another publisher");
          }
        }
      }
    }
  }

  // Any topic and username a client sends: no crash, and closed until synced.
  const auto space = probe.find(' ');
  const std::string_view topic = probe.substr(0, space);
  const std::string_view username =
      space == std::string_view::npos ? std::string_view() : probe.substr(space + 1);
  for (const Table* t : {&first, &second}) {
    for (Access a : {Access::read, Access::write}) {
      const auto verdict = t->decide(username, topic, a);
      if (!t->synced()) {
        RTM_FUZZ_CHECK(verdict != Verdict::allow, "nothing is allowed before a full set");
      }
    }
    (void)t->decide_subscribe(username, topic);
    // The tree's own rights never reach beyond the user's own levels and the presence
    // topics, and never over a refusal of the grants.
    for (Access a : {Access::read, Access::write}) {
      const auto with_tree = t->decide_with_tree(username, topic, a);
      const auto grants_only = t->decide(username, topic, a);
      if (grants_only != Verdict::not_governed) {
        RTM_FUZZ_CHECK(with_tree == grants_only, "the grants decide their own levels");
      } else if (with_tree == Verdict::allow) {
        const std::string own = "/" + std::string(username);
        const bool own_level = topic.find(own + "/") != std::string_view::npos ||
                               (topic.size() >= own.size() &&
                                topic.compare(topic.size() - own.size(), own.size(), own) == 0);
        const bool presence_read = a == Access::read && topic.rfind("rtm/presence/", 0) == 0;
        RTM_FUZZ_CHECK(!username.empty() && (own_level || presence_read),
                       "the tree allows only one's own levels and reading presence");
      }
    }
  }
  return 0;
}
