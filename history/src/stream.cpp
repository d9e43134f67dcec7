#include "rtm/history/stream.hpp"

#include <algorithm>
#include <set>

#include "rtm/util/fnv.hpp"

namespace rtm::history {

namespace {

// Publishers whose newest entry the stream remembers beyond the kept entries (a publisher
// that comes back keeps counting); past it, those without kept entries are forgotten.
constexpr std::size_t kMaxPublisherTops = 4096;
// A page without entries (limit 0) tells every publisher's newest entry, up to this many.
constexpr std::size_t kMaxTopsPerPage = 1024;
// How far from a position's seq the hash of its last payload is looked for.
constexpr std::uint64_t kRealignWindow = 1024;

}  // namespace

std::uint64_t payload_hash(std::string_view payload) {
  return util::fnv1a64(payload);
}

const Entry& Stream::append(std::string_view publisher, std::string_view payload,
                            std::int64_t now_ms) {
  Entry entry;
  entry.offset = ++top_;
  entry.publisher = std::string(publisher);
  auto& tops = tops_[entry.publisher];
  entry.seq = ++tops.seq;
  entry.ts_ms = now_ms;
  entry.hash = payload_hash(payload);
  entry.too_large = payload.size() > limits_.max_message_bytes;
  if (!entry.too_large) entry.payload = std::string(payload);
  tops.hash = entry.hash;
  tops.offset = entry.offset;
  bytes_ += entry.payload.size();
  last_write_ms_ = now_ms;
  entries_.push_back(std::move(entry));
  trim(now_ms);
  while (entries_.size() > 1 &&
         (entries_.size() > limits_.max_messages || bytes_ > limits_.max_bytes)) {
    drop_front();
  }
  if (limits_.max_messages == 0) drop_front();
  if (tops_.size() > kMaxPublisherTops) {
    const auto kept_from = oldest();
    for (auto it = tops_.begin(); it != tops_.end();) {
      it = it->second.offset < kept_from ? tops_.erase(it) : std::next(it);
    }
  }
  static const Entry kDropped{};
  return entries_.empty() ? kDropped : entries_.back();
}

void Stream::drop_front() {
  if (entries_.empty()) return;
  bytes_ -= entries_.front().payload.size();
  dropped_until_ms_ = std::max(dropped_until_ms_, entries_.front().ts_ms);
  entries_.pop_front();
}

std::size_t Stream::trim(std::int64_t now_ms) {
  const auto before = bytes_;
  while (!entries_.empty() && entries_.front().ts_ms + limits_.max_age_ms < now_ms) drop_front();
  return before - bytes_;
}

// The seq after which the publisher's entries are new to the subscriber at `p`; clears
// page.complete when that cannot be told for sure.
std::uint64_t Stream::start_after(const Position& p, bool same_epoch, Page& page) const {
  const auto top_it = tops_.find(p.publisher);
  const std::uint64_t top_seq = top_it == tops_.end() ? 0 : top_it->second.seq;
  const Entry* first = nullptr;  // the publisher's oldest kept entry
  const Entry* at_seq = nullptr;
  const Entry* by_hash = nullptr;  // nearest to the seq (newest without one)
  std::uint64_t best_distance = kRealignWindow + 1;
  for (const auto& e : entries_) {
    if (e.publisher != p.publisher) continue;
    if (!first) first = &e;
    if (same_epoch && p.seq && e.seq == *p.seq) at_seq = &e;
    if (p.hash && e.hash == *p.hash) {
      if (same_epoch && p.seq) {
        const auto distance = e.seq > *p.seq ? e.seq - *p.seq : *p.seq - e.seq;
        if (distance < best_distance) {
          best_distance = distance;
          by_hash = &e;
        }
      } else {
        by_hash = &e;  // the newest
      }
    }
  }
  if (!same_epoch) {
    page.complete = false;
    if (by_hash) return by_hash->seq;
    return top_seq;  // nothing can be told apart: nothing is sent
  }
  if (at_seq && (!p.hash || at_seq->hash == *p.hash)) {
    if (crosses_gap(at_seq->offset)) page.complete = false;
    return at_seq->seq;
  }
  if (by_hash) {
    ++page.realigned;
    if (crosses_gap(by_hash->offset)) page.complete = false;
    return by_hash->seq;
  }
  if (!p.seq) {  // a hash that is not kept: where the subscriber is cannot be told
    ++page.realigned;
    page.complete = false;
    return top_seq;
  }
  const auto seq = *p.seq;
  if (seq >= top_seq) {
    // It counted more than the gateway read (a message the gateway missed): nothing newer.
    if (seq > top_seq) ++page.realigned;
    if (gap_after_ && top_it != tops_.end() && crosses_gap(top_it->second.offset)) {
      page.complete = false;
    }
    return top_seq;
  }
  // seq < top_seq: its entry is gone, or it is there with another payload.
  if (at_seq || !first || seq + 1 < first->seq) page.complete = false;
  if (at_seq) ++page.realigned;
  if (gap_after_) page.complete = false;
  return seq;
}

Page Stream::read(const Query& q, std::int64_t now_ms) {
  trim(now_ms);
  Page page;
  page.epoch = epoch_;
  page.top = top_;
  page.oldest = oldest();
  const bool same_epoch = !q.epoch || *q.epoch == epoch_;
  if (!same_epoch) page.complete = false;

  std::map<std::string_view, std::uint64_t> starts;  // per positioned publisher
  for (const auto& p : q.positions) starts[p.publisher] = start_after(p, same_epoch, page);
  std::set<std::string_view> only(q.publishers.begin(), q.publishers.end());

  std::optional<std::uint64_t> since = q.since;
  if (since) {
    if (!same_epoch) {
      since = 0;  // offsets of another epoch: everything kept, and incomplete
    } else if (*since < top_ && *since + 1 < oldest()) {
      page.complete = false;
    }
    if (crosses_gap(*since)) page.complete = false;
  }
  if (q.since_ms) {
    if (*q.since_ms < dropped_until_ms_) page.complete = false;
    if (gap_after_ && *q.since_ms < gap_ms_) page.complete = false;
  }
  const bool by_position_only = !q.positions.empty() && !since && !q.since_ms;

  auto wanted = [&](const Entry& e) {
    if (!only.empty() && !only.count(e.publisher)) return false;
    if (q.after && e.offset <= *q.after) return false;
    if (q.before && e.offset >= *q.before) return false;
    if (auto it = starts.find(e.publisher); it != starts.end()) return e.seq > it->second;
    if (by_position_only) return false;
    if (since && e.offset <= *since) return false;
    if (q.since_ms && e.ts_ms <= *q.since_ms) return false;
    return true;
  };
  auto take = [&](const Entry& e) {
    if (page.entries.size() >= q.limit) {
      page.more = true;
      return false;
    }
    page.entries.push_back(&e);
    if (e.too_large) page.complete = false;  // its payload was not kept
    return true;
  };
  if (q.reverse) {
    for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
      if (wanted(*it) && !take(*it)) break;
    }
  } else {
    for (const auto& e : entries_) {
      if (wanted(e) && !take(e)) break;
    }
  }

  auto add_top = [&](std::string_view publisher) {
    if (auto it = tops_.find(publisher); it != tops_.end()) {
      page.publishers.emplace(it->first, it->second);
    }
  };
  for (const auto& p : q.positions) add_top(p.publisher);
  for (const auto& name : q.publishers) add_top(name);
  for (const auto* e : page.entries) add_top(e->publisher);
  if (q.limit == 0 && q.publishers.empty()) {
    for (const auto& [name, top] : tops_) {
      if (page.publishers.size() >= kMaxTopsPerPage) break;
      page.publishers.emplace(name, top);
    }
  }
  return page;
}

}  // namespace rtm::history
