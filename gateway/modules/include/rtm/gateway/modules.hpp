#pragma once
// Module RPC (docs/modules.md): absolute-URI requests such as
// "im://modulus/remove_feeds_member?msg_id=1002" are routed to a live node of module `im`
// over MQTT, and "http(s)://NAME/..." to the allow-listed HTTP backend NAME.
//
// Worker side, under the prefix P:
//   P/nodes/{module}/{node}          retained announcement {"state":"up","session":..}; Will "down"
//   P/rpc/{module}/{node}            requests to that node (the gateway publishes, QoS 1)
//   P/rpc-reply/{gateway}/{module}   answers {"id":..,"result":..} (the node publishes)
//   P/u/{uid}/push/{module}/{path}   server push, published by the worker straight to the user
//
// The pure parts (names, the stable hash, the node directory and its routing rules) are
// here so that they can be unit-tested without a broker.
#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "rtm/gateway/core.hpp"
#include "rtm/gateway/request.hpp"
#include "rtm/util/fnv.hpp"

namespace rtm::gateway {

// Installs module RPC and the HTTP proxy on the core (the absolute-URI handler and the
// node/answer subscriptions). Called once by the Gateway.
void register_module_rpc(Core& core);

namespace modules {

inline constexpr std::string_view kModulus = "modulus";
inline constexpr std::string_view kRandom = "random";
inline constexpr std::string_view kCache = "cache";

// FNV-1a, 64 bits: the stable hash of `modulus` (the same on every platform and build,
// unlike std::hash).
using util::fnv1a64;

// A module name is a URI scheme usable as one topic level: a lower-case letter, then
// lower-case letters, digits, '-' or '.', at most 64 bytes; "http" and "https" belong to
// the HTTP proxy. nullopt when valid.
std::optional<std::string> module_name_error(std::string_view module);
// A node id is what a URI host can name (hosts are lower-cased): 1-64 bytes of lower-case
// letters, digits, '-', '.' or '_'; not "modulus", "random" or "cache". nullopt when valid.
std::optional<std::string> node_id_error(std::string_view node);

// modulus: nodes[fnv1a64(uid) % nodes.size()] over the node ids sorted; nullptr when empty.
const std::string* modulus_pick(const std::vector<std::string>& sorted_nodes, std::string_view uid);

// Replaces what cannot be one topic level ('/', '+', '#', control bytes) with '_':
// the gateway's client id becomes the {gateway} level of its answer topic.
std::string topic_level(std::string_view text);

// The live nodes of every module and the uid -> node memory of the `cache` rule.
class Directory {
 public:
  explicit Directory(std::size_t cache_max_entries, std::uint64_t seed = std::random_device{}());

  // A node announced itself up with `session` (its incarnation). Returns the session it had
  // before when that was another one (the node restarted), else nullopt.
  std::optional<std::string> up(const std::string& module, const std::string& node,
                                const std::string& session);
  // The node went down. A `session` other than the live one is an old incarnation's Will
  // and is ignored; an empty `session` always counts. Returns true when the node was removed.
  bool down(const std::string& module, const std::string& node, const std::string& session);
  // The live session of a node, or nullptr.
  const std::string* session(const std::string& module, const std::string& node) const;
  // The live node ids of a module, sorted.
  std::vector<std::string> nodes(const std::string& module) const;
  std::size_t node_count() const;

  // Chooses a node of `module` for `uid` by `rule` (the URI host): modulus, random, cache
  // or a literal node id. NO_ROUTE when nothing serves it.
  Outcome<std::string> route(const std::string& module, const std::string& rule,
                             const std::string& uid);
  // Remembers that `node` served `uid` (for `cache`), dropping the least recently used
  // entry beyond the bound.
  void served(const std::string& module, const std::string& uid, const std::string& node);
  // The node that last served uid, or nullptr.
  const std::string* cached(const std::string& module, const std::string& uid) const;
  std::size_t cache_size() const { return lru_.size(); }

 private:
  std::map<std::string, std::map<std::string, std::string>> modules_;  // module -> node -> session
  std::size_t cache_max_;
  std::list<std::pair<std::string, std::string>> lru_;  // (module '\0' uid, node), newest first
  std::unordered_map<std::string, std::list<std::pair<std::string, std::string>>::iterator> index_;
  std::mt19937_64 rng_;
};

}  // namespace modules
}  // namespace rtm::gateway
