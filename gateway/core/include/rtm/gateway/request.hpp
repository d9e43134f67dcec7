#pragma once
// A request as the handlers see it: the caller, the parsed URI and its parameters,
// merged from the query and the JSON body.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rtm/gateway/errors.hpp"
#include "rtm/gateway/json.hpp"
#include "rtm/topics/expected.hpp"
#include "rtm/topics/names.hpp"
#include "rtm/topics/uri.hpp"

namespace rtm::gateway {

struct Failure {
  ErrorCode code;
  std::string message;
};

template <class T>
using Outcome = Expected<T, Failure>;

inline Failure failure(ErrorCode code, std::string message) { return {code, std::move(message)}; }

// Parameters of one request. Query values are strings; the body may carry any JSON.
class Params {
 public:
  // Merges the query parameters (except msg_id) into the JSON body object. A key given
  // both ways is DUPLICATE_PARAMETER; a body that is not a JSON object is BAD_JSON.
  // Names are checked with `rules` (the broker's, see broker.profile).
  static Outcome<Params> merge(const topics::Uri& uri, std::string_view body,
                               topics::NameRules rules = {});

  const json::Value& root() const { return doc_; }
  bool has(std::string_view key) const;

  // Refuses parameters the operation does not know, naming the ones it does.
  std::optional<Failure> only(std::string_view operation,
                              const std::vector<std::string_view>& allowed) const;

  Outcome<std::string> string(std::string_view key) const;
  std::optional<std::string> optional_string(std::string_view key) const;
  // A uid/channel/topic name; INVALID_NAME when it breaks the rules.
  Outcome<std::string> name(std::string_view key) const;
  // A list of names: a JSON array of strings, or a comma-separated string in a query.
  Outcome<std::vector<std::string>> names(std::string_view key) const;
  // An integer in [min, max]: a JSON number, or decimal digits in a query.
  Outcome<std::int64_t> integer(std::string_view key, std::int64_t min, std::int64_t max) const;
  // true/false: a JSON boolean, or true/1/false/0 in a query; false when absent.
  Outcome<bool> flag(std::string_view key) const;
  // The raw value of `key`, or null when absent.
  const json::Value* value(std::string_view key) const { return find(key); }

 private:
  const json::Value* find(std::string_view key) const;
  json::Document doc_;
  topics::NameRules rules_;
};

}  // namespace rtm::gateway
