#include "rtm/gateway/replica.hpp"
namespace rtm::gateway::replica {
std::vector<Row> read_rows(const MemoryStore&, const ChangeSet&) { return {}; }
void for_each_row(const MemoryStore&, const std::function<void(Row)>&) {}
std::vector<std::string> apply_rows(MemoryStore&, const std::vector<Row>&, ChangeSet*) { return {}; }
void clear(MemoryStore&) {}
}
