#include "rtm/storage/metadata.hpp"

#include <set>
#include <utility>

namespace rtm::storage {

namespace {

std::string n(std::size_t v) {
  return std::to_string(v);
}

std::size_t metadata_bytes(const Metadata& m) {
  std::size_t total = 0;
  for (const auto& [key, item] : m.items) total += item_bytes(key, item.value);
  return total;
}

// The call's own shape and sizes, before looking at the current state.
std::optional<Error> check_call(const Write& w, const MetadataLimits& limits) {
  const auto kind = std::string(write_kind_name(w.kind));
  if (w.items.empty() && w.kind != WriteKind::remove) {
    return make_error(ErrorCode::no_items, kind + " needs at least one item");
  }
  if (w.items.size() > limits.max_items_per_call) {
    return make_error(ErrorCode::too_many_items,
                 kind + " names " + n(w.items.size()) + " items, more than the " +
                     n(limits.max_items_per_call) + " allowed in one call",
                 MetadataLimits::kMaxItemsPerCallKey);
  }
  if (w.major_revision < kNoCheck) {
    return make_error(ErrorCode::invalid_revision, "major_revision " + std::to_string(w.major_revision) +
                                                  " is invalid: -1 (no check) or a revision >= 0");
  }
  std::set<std::string_view> seen;
  std::size_t call_bytes = 0;
  for (const auto& item : w.items) {
    if (auto problem = key_problem(item.key, limits.max_key_bytes)) {
      return make_error(ErrorCode::invalid_key, "key \"" + item.key + "\" " + *problem,
                   item.key.size() > limits.max_key_bytes ? MetadataLimits::kMaxKeyBytesKey
                                                          : std::string_view{},
                   item.key);
    }
    if (!seen.insert(item.key).second) {
      return make_error(ErrorCode::duplicate_key, "key \"" + item.key + "\" appears twice in one call",
                   {}, item.key);
    }
    if (item.revision < kNoCheck) {
      return make_error(ErrorCode::invalid_revision,
                   "revision " + std::to_string(item.revision) + " of key \"" + item.key +
                       "\" is invalid: -1 (no check) or a revision >= 0",
                   {}, item.key);
    }
    // A remove carries no value. (Both arms are views: a ternary of "" and a std::string
    // would make a temporary string that the view outlives.)
    const std::string_view value =
        w.kind == WriteKind::remove ? std::string_view{} : std::string_view{item.value};
    if (value.size() > limits.max_value_bytes) {
      return make_error(ErrorCode::value_too_large,
                   "the value of key \"" + item.key + "\" is " + n(value.size()) +
                       " bytes, more than " + n(limits.max_value_bytes),
                   MetadataLimits::kMaxValueBytesKey, item.key);
    }
    call_bytes += item_bytes(item.key, value);
  }
  if (call_bytes > limits.max_call_bytes) {
    return make_error(ErrorCode::call_too_large,
                 "the keys and values of this call are " + n(call_bytes) + " bytes, more than " +
                     n(limits.max_call_bytes),
                 MetadataLimits::kMaxCallBytesKey);
  }
  return std::nullopt;
}

std::optional<Error> check_revisions(const Metadata& current, const Write& w) {
  if (w.major_revision != kNoCheck && w.major_revision != current.major_revision) {
    auto e = make_error(ErrorCode::major_revision_mismatch,
                   "major_revision is " + std::to_string(current.major_revision) +
                       ", the call expected " + std::to_string(w.major_revision));
    e.expected = w.major_revision;
    e.actual = current.major_revision;
    return e;
  }
  for (const auto& item : w.items) {
    const auto found = current.items.find(item.key);
    if (w.kind == WriteKind::update && found == current.items.end()) {
      return make_error(ErrorCode::item_not_found,
                   "update of key \"" + item.key + "\", which does not exist (set creates keys)",
                   {}, item.key);
    }
    const std::int64_t actual = found == current.items.end() ? 0 : found->second.revision;
    if (item.revision != kNoCheck && item.revision != actual) {
      auto e = make_error(ErrorCode::item_revision_mismatch,
                     "key \"" + item.key + "\" is at revision " + std::to_string(actual) +
                         ", the call expected " + std::to_string(item.revision),
                     {}, item.key);
      e.expected = item.revision;
      e.actual = actual;
      return e;
    }
  }
  return std::nullopt;
}

std::optional<Error> check_result(const Metadata& next, const MetadataLimits& limits) {
  if (next.items.size() > limits.max_items) {
    return make_error(ErrorCode::too_many_items,
                 "the metadata would hold " + n(next.items.size()) + " items, more than " +
                     n(limits.max_items),
                 MetadataLimits::kMaxItemsKey);
  }
  const auto bytes = metadata_bytes(next);
  if (bytes > limits.max_metadata_bytes) {
    return make_error(ErrorCode::metadata_too_large,
                 "the metadata would hold " + n(bytes) + " bytes of keys and values, more than " +
                     n(limits.max_metadata_bytes),
                 MetadataLimits::kMaxMetadataBytesKey);
  }
  return std::nullopt;
}

}  // namespace

std::string_view write_kind_name(WriteKind kind) {
  switch (kind) {
    case WriteKind::set:
      return "set";
    case WriteKind::update:
      return "update";
    case WriteKind::remove:
      return "remove";
  }
  return "unknown";
}

std::size_t item_bytes(std::string_view key, std::string_view value) {
  return key.size() + value.size();
}

Result<Applied> apply(const Metadata& current, const Write& write, const Caller& caller,
                      const MetadataLimits& limits) {
  if (auto e = check_call(write, limits)) return *e;
  if (auto e = check_revisions(current, write)) return *e;

  Applied out{current, Change{write.kind, current.major_revision, {}}};
  auto& items = out.metadata.items;
  const std::int64_t next_revision = current.major_revision + 1;
  if (write.kind == WriteKind::remove) {
    if (write.items.empty()) {
      for (auto& [key, item] : items) out.change.items.push_back(std::move(item));
      items.clear();
    } else {
      for (const auto& w : write.items) {
        const auto found = items.find(w.key);
        if (found == items.end()) continue;
        out.change.items.push_back(std::move(found->second));
        items.erase(found);
      }
    }
  } else {
    for (const auto& w : write.items) {
      Item item{w.key, w.value, next_revision, std::nullopt, std::nullopt};
      if (write.record_author) item.author = caller.uid;
      if (write.record_ts) item.updated_at_ms = caller.now_ms;
      items[w.key] = item;
      out.change.items.push_back(std::move(item));
    }
  }
  if (out.change.empty()) return out;  // a remove of absent keys: nothing changed
  if (auto e = check_result(out.metadata, limits)) return *e;
  out.metadata.major_revision = next_revision;
  out.change.major_revision = next_revision;
  return out;
}

std::vector<Item> snapshot(const Metadata& metadata, const std::vector<std::string>& keys) {
  std::vector<Item> out;
  if (keys.empty()) {
    for (const auto& [key, item] : metadata.items) out.push_back(item);
    return out;
  }
  std::set<std::string> wanted(keys.begin(), keys.end());
  for (const auto& key : wanted) {
    if (const auto found = metadata.items.find(key); found != metadata.items.end()) {
      out.push_back(found->second);
    }
  }
  return out;
}

}  // namespace rtm::storage
