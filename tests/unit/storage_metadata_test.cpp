// rtm::storage metadata: every combination of the compare-and-set rules, all-or-nothing
// writes, revisions, recorded author and time, and each limit at and past its boundary.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "rtm/storage/metadata.hpp"

using namespace rtm::storage;

namespace {

const Caller kAlice{"alice", 1700000000000};

Write write(WriteKind kind, std::vector<ItemWrite> items, std::int64_t major = kNoCheck) {
  Write w;
  w.kind = kind;
  w.items = std::move(items);
  w.major_revision = major;
  return w;
}

Metadata applied(const Metadata& m, const Write& w, const MetadataLimits& limits = {}) {
  auto r = apply(m, w, kAlice, limits);
  REQUIRE_MESSAGE(r.ok(), (r.ok() ? "" : r.error().message));
  return r->metadata;
}

// Three writes: a at revision 2, b at revision 3, major revision 3.
Metadata base() {
  Metadata m;
  m = applied(m, write(WriteKind::set, {{"a", "1", kNoCheck}}));
  m = applied(m, write(WriteKind::set, {{"a", "2", kNoCheck}}));
  m = applied(m, write(WriteKind::set, {{"b", "3", kNoCheck}}));
  REQUIRE(m.major_revision == 3);
  REQUIRE(m.items.at("a").revision == 2);
  REQUIRE(m.items.at("b").revision == 3);
  return m;
}

}  // namespace

TEST_CASE("storage metadata: every combination of major and item revision checks") {
  // Item cases on base(): key, the revision the call passes.
  struct ItemCase {
    const char* name;
    const char* key;
    std::int64_t revision;
  };
  const ItemCase item_cases[] = {
      {"existing, no check", "a", -1}, {"existing, equal", "a", 2},
      {"existing, different", "a", 1}, {"existing, 0 (create only)", "a", 0},
      {"new key, no check", "z", -1},  {"new key, 0 (absent)", "z", 0},
      {"new key, different", "z", 5},
  };
  // What each kind gives for each item case when the major check passes.
  enum Outcome { written, removed, unchanged, item_mismatch, not_found };
  struct Row {
    WriteKind kind;
    Outcome outcome[7];
  };
  const Row rows[] = {
      {WriteKind::set,
       {written, written, item_mismatch, item_mismatch, written, written, item_mismatch}},
      {WriteKind::update,
       {written, written, item_mismatch, item_mismatch, not_found, not_found, not_found}},
      {WriteKind::remove,
       {removed, removed, item_mismatch, item_mismatch, unchanged, unchanged, item_mismatch}},
  };
  struct MajorCase {
    const char* name;
    std::int64_t major;
    bool passes;
  };
  const MajorCase major_cases[] = {
      {"major -1", -1, true}, {"major equal", 3, true}, {"major different", 2, false}};

  const Metadata m = base();
  int combinations = 0;
  for (const auto& row : rows) {
    for (const auto& major : major_cases) {
      for (int i = 0; i < 7; ++i) {
        const auto& ic = item_cases[i];
        CAPTURE(write_kind_name(row.kind));
        CAPTURE(major.name);
        CAPTURE(ic.name);
        ++combinations;
        const auto r =
            apply(m, write(row.kind, {{ic.key, "new", ic.revision}}, major.major), kAlice);
        if (!major.passes) {
          REQUIRE_FALSE(r.ok());
          CHECK(r.error().code == ErrorCode::major_revision_mismatch);
          CHECK(r.error().expected == 2);
          CHECK(r.error().actual == 3);
          continue;
        }
        switch (row.outcome[i]) {
          case written: {
            REQUIRE(r.ok());
            CHECK(r->metadata.major_revision == 4);
            CHECK(r->metadata.items.at(ic.key).value == "new");
            CHECK(r->metadata.items.at(ic.key).revision == 4);
            CHECK(r->metadata.items.at("b") == m.items.at("b"));  // untouched
            CHECK(r->change.major_revision == 4);
            REQUIRE(r->change.items.size() == 1);
            CHECK(r->change.items[0] == r->metadata.items.at(ic.key));
            break;
          }
          case removed: {
            REQUIRE(r.ok());
            CHECK(r->metadata.major_revision == 4);
            CHECK(r->metadata.items.count(ic.key) == 0);
            CHECK(r->metadata.items.size() == 1);
            REQUIRE(r->change.items.size() == 1);
            CHECK(r->change.items[0] == m.items.at(ic.key));  // as it was
            break;
          }
          case unchanged: {
            REQUIRE(r.ok());
            CHECK(r->metadata == m);
            CHECK(r->change.empty());
            CHECK(r->change.major_revision == 3);
            break;
          }
          case item_mismatch: {
            REQUIRE_FALSE(r.ok());
            CHECK(r.error().code == ErrorCode::item_revision_mismatch);
            CHECK(r.error().key == ic.key);
            CHECK(r.error().expected == ic.revision);
            CHECK(r.error().actual == (std::string(ic.key) == "a" ? 2 : 0));
            break;
          }
          case not_found: {
            REQUIRE_FALSE(r.ok());
            CHECK(r.error().code == ErrorCode::item_not_found);
            CHECK(r.error().key == ic.key);
            break;
          }
        }
      }
    }
  }
  CHECK(combinations == 63);
}

TEST_CASE("storage metadata: one failing item of several refuses the whole call") {
  const Metadata m = base();
  struct Case {
    const char* name;
    Write w;
    ErrorCode code;
    const char* key;
  };
  const Case cases[] = {
      {"set, last item stale", write(WriteKind::set, {{"a", "x", 2}, {"c", "x", 0}, {"b", "x", 1}}),
       ErrorCode::item_revision_mismatch, "b"},
      {"update, one key missing",
       write(WriteKind::update, {{"a", "x", -1}, {"nope", "x", -1}, {"b", "x", 3}}),
       ErrorCode::item_not_found, "nope"},
      {"remove, first item stale", write(WriteKind::remove, {{"a", "", 1}, {"b", "", 3}}),
       ErrorCode::item_revision_mismatch, "a"},
      {"set, one key invalid", write(WriteKind::set, {{"a", "x", -1}, {"", "x", -1}}),
       ErrorCode::invalid_key, ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto r = apply(m, c.w, kAlice);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == c.code);
    CHECK(r.error().key == c.key);
  }
  // The same calls with every check right go through, all items at the new revision.
  const auto ok =
      apply(m, write(WriteKind::set, {{"a", "x", 2}, {"c", "x", 0}, {"b", "x", 3}}, 3), kAlice);
  REQUIRE(ok.ok());
  CHECK(ok->metadata.major_revision == 4);
  for (const char* key : {"a", "b", "c"}) CHECK(ok->metadata.items.at(key).revision == 4);
  CHECK(ok->change.items.size() == 3);
}

TEST_CASE("storage metadata: set keeps the keys it leaves out, update merges, remove all") {
  Metadata m = base();
  m = applied(m, write(WriteKind::set, {{"c", "c1", -1}}));
  CHECK(m.items.size() == 3);  // RTM 2: set does not drop a and b
  m = applied(m, write(WriteKind::update, {{"a", "a2", -1}}));
  CHECK(m.items.at("a").value == "a2");
  CHECK(m.items.at("c").value == "c1");
  CHECK(m.major_revision == 5);

  const auto all = apply(m, write(WriteKind::remove, {}, 5), kAlice);
  REQUIRE(all.ok());
  CHECK(all->metadata.items.empty());
  CHECK(all->metadata.major_revision == 6);  // kept: revisions never go back
  CHECK(all->change.items.size() == 3);
  CHECK(all->change.kind == WriteKind::remove);

  // Remove all of an empty metadata changes nothing.
  const auto again = apply(all->metadata, write(WriteKind::remove, {}), kAlice);
  REQUIRE(again.ok());
  CHECK(again->change.empty());
  CHECK(again->metadata.major_revision == 6);
}

TEST_CASE("storage metadata: a key's revisions only grow, across remove and re-create") {
  Metadata m;
  CHECK(apply(m, write(WriteKind::set, {{"k", "v", -1}}, 1), kAlice).error().code ==
        ErrorCode::major_revision_mismatch);
  // major_revision 0: only if never written.
  m = applied(m, write(WriteKind::set, {{"k", "v", -1}}, 0));
  std::int64_t last = m.items.at("k").revision;
  for (int round = 0; round < 5; ++round) {
    m = applied(m, write(WriteKind::remove, {{"k", "", last}}));
    CHECK(m.items.count("k") == 0);
    m = applied(m, write(WriteKind::set, {{"k", "v", 0}}));
    CHECK(m.items.at("k").revision > last);
    last = m.items.at("k").revision;
  }
  CHECK(m.major_revision == 11);
}

TEST_CASE("storage metadata: two writers racing on one item with CAS, exactly one wins") {
  const Metadata m = base();
  const Caller bob{"bob", 5};
  // Both read a at revision 2 and write it with that revision.
  const auto first = apply(m, write(WriteKind::update, {{"a", "alice", 2}}), kAlice);
  REQUIRE(first.ok());
  const auto second = apply(first->metadata, write(WriteKind::update, {{"a", "bob", 2}}), bob);
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().code == ErrorCode::item_revision_mismatch);
  CHECK(second.error().expected == 2);
  CHECK(second.error().actual == 4);
}

TEST_CASE("storage metadata: record_author and record_ts") {
  Write w = write(WriteKind::set, {{"name", "Alice", -1}});
  w.record_author = true;
  w.record_ts = true;
  auto m = applied(Metadata{}, w);
  CHECK(m.items.at("name").author == std::optional<std::string>("alice"));
  CHECK(m.items.at("name").updated_at_ms == std::optional<std::int64_t>(1700000000000));
  // An overwrite without the options records neither (it does not keep the old author).
  m = applied(m, write(WriteKind::set, {{"name", "Al", -1}}));
  CHECK_FALSE(m.items.at("name").author.has_value());
  CHECK_FALSE(m.items.at("name").updated_at_ms.has_value());
  Write only_ts = write(WriteKind::update, {{"name", "A", -1}});
  only_ts.record_ts = true;
  m = applied(m, only_ts);
  CHECK_FALSE(m.items.at("name").author.has_value());
  CHECK(m.items.at("name").updated_at_ms.has_value());
}

TEST_CASE("storage metadata: malformed calls") {
  const Metadata m = base();
  struct Case {
    const char* name;
    Write w;
    ErrorCode code;
  };
  const Case cases[] = {
      {"set without items", write(WriteKind::set, {}), ErrorCode::no_items},
      {"update without items", write(WriteKind::update, {}), ErrorCode::no_items},
      {"a key twice", write(WriteKind::set, {{"a", "1", -1}, {"a", "2", -1}}),
       ErrorCode::duplicate_key},
      {"item revision -2", write(WriteKind::set, {{"a", "1", -2}}), ErrorCode::invalid_revision},
      {"major revision -2", write(WriteKind::set, {{"a", "1", -1}}, -2),
       ErrorCode::invalid_revision},
      {"key twice in remove", write(WriteKind::remove, {{"a", "", -1}, {"a", "", -1}}),
       ErrorCode::duplicate_key},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto r = apply(m, c.w, kAlice);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == c.code);
    CHECK_FALSE(r.error().message.empty());
  }
}

TEST_CASE("storage metadata: the key rule") {
  struct Case {
    std::string key;
    bool ok;
  };
  const Case cases[] = {
      {"a", true},
      {std::string(64, 'k'), true},
      {std::string(65, 'k'), false},
      {"", false},
      {"player/2", true},
      {"seat 3", true},
      {"caf\xc3\xa9", true},               // é, 2 bytes
      {"\xe6\x88\xbf\xe9\x97\xb4", true},  // 房间
      {"\xf0\x9f\x8e\xae", true},          // U+1F3AE
      {"tab\there", false},
      {"nul" + std::string(1, '\0'), false},
      {"del\x7f", false},
      {"c1\xc2\x85", false},  // U+0085, a C1 control
      {"bad\xff", false},
      {"overlong\xc0\xaf", false},
      {"surrogate\xed\xa0\x80", false},
      {"cut\xe6\x88", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.key);
    const auto r = apply(Metadata{}, write(WriteKind::set, {{c.key, "v", -1}}), kAlice);
    CHECK(r.ok() == c.ok);
    if (!c.ok) CHECK(r.error().code == ErrorCode::invalid_key);
  }
  const auto long_key =
      apply(Metadata{}, write(WriteKind::set, {{std::string(65, 'k'), "v", -1}}), kAlice);
  CHECK(long_key.error().limit == "storage.max_key_bytes");
}

TEST_CASE("storage metadata: each limit at and past its boundary, naming its config key") {
  MetadataLimits limits;
  limits.max_key_bytes = 4;
  limits.max_value_bytes = 8;
  limits.max_call_bytes = 20;
  limits.max_items_per_call = 3;
  limits.max_items = 4;
  limits.max_metadata_bytes = 24;

  struct Case {
    const char* name;
    Metadata start;
    Write w;
    bool ok;
    ErrorCode code;
    std::string_view limit;
  };
  Metadata three;  // 3 items of 2 + 2 bytes: 12 bytes
  three = applied(
      three, write(WriteKind::set, {{"k1", "v1", -1}, {"k2", "v2", -1}, {"k3", "v3", -1}}), limits);
  // 18 bytes: k1 grown to 8 bytes.
  const Metadata bigger =
      applied(three, write(WriteKind::update, {{"k1", "12345678", -1}}), limits);
  const Case cases[] = {
      {"key at max", {}, write(WriteKind::set, {{"kkkk", "v", -1}}), true, {}, {}},
      {"key past max",
       {},
       write(WriteKind::set, {{"kkkkk", "v", -1}}),
       false,
       ErrorCode::invalid_key,
       MetadataLimits::kMaxKeyBytesKey},
      {"value at max", {}, write(WriteKind::set, {{"k", std::string(8, 'v'), -1}}), true, {}, {}},
      {"value past max",
       {},
       write(WriteKind::set, {{"k", std::string(9, 'v'), -1}}),
       false,
       ErrorCode::value_too_large,
       MetadataLimits::kMaxValueBytesKey},
      {"call at max",
       {},
       write(WriteKind::set,
             {{"a", std::string(8, 'v'), -1}, {"b", std::string(8, 'v'), -1}, {"cc", "", -1}}),
       true,
       {},
       {}},
      {"call past max",
       {},
       write(WriteKind::set,
             {{"a", std::string(8, 'v'), -1}, {"b", std::string(8, 'v'), -1}, {"ccc", "", -1}}),
       false,
       ErrorCode::call_too_large,
       MetadataLimits::kMaxCallBytesKey},
      {"items per call at max",
       {},
       write(WriteKind::set, {{"a", "", -1}, {"b", "", -1}, {"c", "", -1}}),
       true,
       {},
       {}},
      {"items per call past max",
       {},
       write(WriteKind::set, {{"a", "", -1}, {"b", "", -1}, {"c", "", -1}, {"d", "", -1}}),
       false,
       ErrorCode::too_many_items,
       MetadataLimits::kMaxItemsPerCallKey},
      {"items per call past max, remove", three,
       write(WriteKind::remove, {{"a", "", -1}, {"b", "", -1}, {"c", "", -1}, {"d", "", -1}}),
       false, ErrorCode::too_many_items, MetadataLimits::kMaxItemsPerCallKey},
      {"items at max", three, write(WriteKind::set, {{"k4", "v4", -1}}), true, {}, {}},
      {"items past max", three, write(WriteKind::set, {{"k4", "", -1}, {"k5", "", -1}}), false,
       ErrorCode::too_many_items, MetadataLimits::kMaxItemsKey},
      {"items at max by overwriting",
       three,
       write(WriteKind::set, {{"k1", "", -1}, {"k4", "", -1}}),
       true,
       {},
       {}},
      {"value past max before the metadata limit", three,
       write(WriteKind::set, {{"k4", "123456789", -1}}), false, ErrorCode::value_too_large,
       MetadataLimits::kMaxValueBytesKey},
      {"metadata bytes at max",
       bigger,
       write(WriteKind::update, {{"k2", "12345678", -1}}),
       true,
       {},
       {}},
      {"metadata bytes past max", bigger,
       write(WriteKind::update, {{"k2", "12345678", -1}, {"k3", "v33", -1}}), false,
       ErrorCode::metadata_too_large, MetadataLimits::kMaxMetadataBytesKey},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto r = apply(c.start, c.w, kAlice, limits);
    REQUIRE(r.ok() == c.ok);
    if (c.ok) continue;
    CHECK(r.error().code == c.code);
    CHECK(r.error().limit == c.limit);
    CHECK(r.error().message.find(" than ") != std::string::npos);  // names the bound
  }
}

TEST_CASE("storage metadata: RTM 2's defaults: 64 KiB per value and per call") {
  const MetadataLimits defaults;
  CHECK(defaults.max_key_bytes == 64);
  const std::string value(64 * 1024 - 1, 'v');
  CHECK(apply(Metadata{}, write(WriteKind::set, {{"k", value, -1}}), kAlice).ok());  // 64 KiB
  const auto past = apply(Metadata{}, write(WriteKind::set, {{"k", value + "vv", -1}}), kAlice);
  CHECK(past.error().code == ErrorCode::value_too_large);
  const auto call =
      apply(Metadata{}, write(WriteKind::set, {{"a", value, -1}, {"b", "v", -1}}), kAlice);
  CHECK(call.error().code == ErrorCode::call_too_large);
}

TEST_CASE("storage metadata: snapshot of all items or the named ones") {
  const Metadata m = base();
  CHECK(snapshot(m).size() == 2);
  const auto some = snapshot(m, {"b", "missing", "b"});
  REQUIRE(some.size() == 1);
  CHECK(some[0].key == "b");
  CHECK(some[0].revision == 3);
  CHECK(snapshot(Metadata{}).empty());
}

TEST_CASE("storage metadata: error names are stable") {
  CHECK(error_name(ErrorCode::major_revision_mismatch) == "major_revision_mismatch");
  CHECK(error_name(ErrorCode::item_revision_mismatch) == "item_revision_mismatch");
  CHECK(error_name(ErrorCode::item_not_found) == "item_not_found");
  CHECK(error_name(ErrorCode::too_many_items) == "too_many_items");
  CHECK(error_name(ErrorCode::value_too_large) == "value_too_large");
  CHECK(error_name(ErrorCode::call_too_large) == "call_too_large");
  CHECK(error_name(ErrorCode::invalid_key) == "invalid_key");
  CHECK(error_name(ErrorCode::lock_not_found) == "lock_not_found");
  CHECK(error_name(ErrorCode::lock_held) == "lock_held");
  CHECK(error_name(ErrorCode::not_lock_holder) == "not_lock_holder");
  CHECK(error_name(ErrorCode::corrupt_record) == "corrupt_record");
}
