#include "rtm/storage/records.hpp"

#include <charconv>
#include <cstdint>
#include <optional>
#include <set>

namespace rtm::storage {

namespace {

class FieldWriter {
 public:
  explicit FieldWriter(std::string_view first_line) : out_(first_line) { out_ += '\n'; }
  void text(std::string_view s) {
    out_ += std::to_string(s.size());
    out_ += ':';
    out_ += s;
  }
  void number(std::int64_t v) { text(std::to_string(v)); }
  void optional_text(const std::optional<std::string>& v) {
    text(v ? "1" : "0");
    if (v) text(*v);
  }
  void optional_number(const std::optional<std::int64_t>& v) {
    text(v ? "1" : "0");
    if (v) number(*v);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// Reads fields until the first problem, then reports it through ok()/problem().
class FieldReader {
 public:
  FieldReader(std::string_view bytes, std::string_view first_line) : rest_(bytes) {
    const auto line_end = rest_.find('\n');
    if (line_end == std::string_view::npos || rest_.substr(0, line_end) != first_line) {
      fail("does not start with \"" + std::string(first_line) + "\"");
      return;
    }
    rest_.remove_prefix(line_end + 1);
  }

  std::string text() {
    if (!problem_.empty()) return {};
    const auto colon = rest_.find(':');
    std::size_t length = 0;
    if (colon == std::string_view::npos || colon == 0 ||
        std::from_chars(rest_.data(), rest_.data() + colon, length).ptr != rest_.data() + colon) {
      fail("has a field without a length");
      return {};
    }
    if (length > rest_.size() - colon - 1) {
      fail("has a field longer than the record");
      return {};
    }
    std::string out(rest_.substr(colon + 1, length));
    rest_.remove_prefix(colon + 1 + length);
    return out;
  }

  std::int64_t number() {
    const auto s = text();
    std::int64_t v = 0;
    if (problem_.empty() && (s.empty() || std::from_chars(s.data(), s.data() + s.size(), v).ptr !=
                                              s.data() + s.size())) {
      fail("has a number field that is not a number");
    }
    return v;
  }

  // A count of entries that follow, each at least min_entry_bytes long, so that a corrupt
  // count cannot make the caller reserve or loop past the record.
  std::size_t count(std::size_t min_entry_bytes) {
    const auto v = number();
    if (!problem_.empty()) return 0;
    if (v < 0 || static_cast<std::uint64_t>(v) > rest_.size() / min_entry_bytes) {
      fail("has an impossible count");
      return 0;
    }
    return static_cast<std::size_t>(v);
  }

  bool flag() {
    const auto s = text();
    if (problem_.empty() && s != "0" && s != "1") fail("has a flag that is neither 0 nor 1");
    return s == "1";
  }
  std::optional<std::string> optional_text() {
    if (!flag()) return std::nullopt;
    return text();
  }
  std::optional<std::int64_t> optional_number() {
    if (!flag()) return std::nullopt;
    return number();
  }

  void fail(std::string why) {
    if (problem_.empty()) problem_ = std::move(why);
  }
  // Checks that everything was read; the error to return, if any.
  std::optional<Error> finish(std::string_view what) {
    if (problem_.empty() && !rest_.empty()) fail("has bytes after its last field");
    if (problem_.empty()) return std::nullopt;
    Error e;
    e.code = ErrorCode::corrupt_record;
    e.message = "the stored " + std::string(what) + " record " + problem_;
    return e;
  }

 private:
  std::string_view rest_;
  std::string problem_;
};

constexpr std::size_t kMinFieldBytes = 2;  // "0:"

}  // namespace

std::string encode_metadata(const Metadata& metadata) {
  FieldWriter w(kMetadataRecordLine);
  w.number(metadata.major_revision);
  w.number(static_cast<std::int64_t>(metadata.items.size()));
  for (const auto& [key, item] : metadata.items) {
    w.text(key);
    w.text(item.value);
    w.number(item.revision);
    w.optional_text(item.author);
    w.optional_number(item.updated_at_ms);
  }
  return w.take();
}

Result<Metadata> decode_metadata(std::string_view bytes) {
  FieldReader r(bytes, kMetadataRecordLine);
  Metadata m;
  m.major_revision = r.number();
  if (m.major_revision < 0) r.fail("has a negative major revision");
  const auto n = r.count(5 * kMinFieldBytes);
  for (std::size_t i = 0; i < n; ++i) {
    Item item;
    item.key = r.text();
    item.value = r.text();
    item.revision = r.number();
    item.author = r.optional_text();
    item.updated_at_ms = r.optional_number();
    // Item revisions are major revisions of earlier writes (README, "Revisions").
    if (item.revision < 1 || item.revision > m.major_revision) {
      r.fail("has an item revision outside [1, major revision]");
    }
    const auto key = item.key;
    if (!m.items.emplace(key, std::move(item)).second) r.fail("has a key twice");
  }
  if (auto e = r.finish("metadata")) return *e;
  return m;
}

std::string encode_states(const StateItems& states) {
  FieldWriter w(kStatesRecordLine);
  w.number(static_cast<std::int64_t>(states.size()));
  for (const auto& [key, value] : states) {
    w.text(key);
    w.text(value);
  }
  return w.take();
}

Result<StateItems> decode_states(std::string_view bytes) {
  FieldReader r(bytes, kStatesRecordLine);
  StateItems states;
  const auto n = r.count(2 * kMinFieldBytes);
  for (std::size_t i = 0; i < n; ++i) {
    auto key = r.text();
    auto value = r.text();
    if (!states.emplace(std::move(key), std::move(value)).second) r.fail("has a key twice");
  }
  if (auto e = r.finish("states")) return *e;
  return states;
}

std::string encode_locks(const std::vector<LockState>& locks) {
  FieldWriter w(kLocksRecordLine);
  w.number(static_cast<std::int64_t>(locks.size()));
  for (const auto& lock : locks) {
    w.text(lock.name);
    w.number(lock.ttl_s);
    w.optional_text(lock.holder);
    w.optional_number(lock.expires_at_ms);
    w.number(static_cast<std::int64_t>(lock.waiters.size()));
    for (const auto& uid : lock.waiters) w.text(uid);
  }
  return w.take();
}

Result<std::vector<LockState>> decode_locks(std::string_view bytes) {
  FieldReader r(bytes, kLocksRecordLine);
  std::vector<LockState> locks;
  std::set<std::string> names;
  const auto n = r.count(5 * kMinFieldBytes);
  for (std::size_t i = 0; i < n; ++i) {
    LockState lock;
    lock.name = r.text();
    lock.ttl_s = r.number();
    lock.holder = r.optional_text();
    lock.expires_at_ms = r.optional_number();
    const auto waiters = r.count(kMinFieldBytes);
    for (std::size_t k = 0; k < waiters; ++k) lock.waiters.push_back(r.text());
    if (lock.ttl_s <= 0) r.fail("has a lock without a positive ttl");
    if (lock.expires_at_ms && !lock.holder) r.fail("has a deadline on a lock nobody holds");
    if (!lock.holder && !lock.waiters.empty()) r.fail("has waiters on a free lock");
    if (!names.insert(lock.name).second) r.fail("has a lock name twice");
    locks.push_back(std::move(lock));
  }
  if (auto e = r.finish("locks")) return *e;
  return locks;
}

}  // namespace rtm::storage
