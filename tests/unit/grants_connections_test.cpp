// The plugin's book of token connections (expiry kicks, K/k/T records), the login-request
// topic it watches and its log budget: pure, so tried here without a broker.
#include <doctest/doctest.h>

#include <algorithm>

#include "rtm/grants/connections.hpp"
#include "rtm/grants/table.hpp"

using namespace rtm::grants;

namespace {

int h1, h2, h3;  // connection handles (only their addresses matter)

std::vector<std::string> expired(ConnectionBook& book, std::int64_t now) {
  std::vector<std::string> out;
  book.take_expired(now, out);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("connections expire at their token expiry in order and once") {
  ConnectionBook book;
  CHECK(book.add("alice/a", "alice", 100, &h1) == ConnectionBook::Added::added);
  CHECK(book.add("bob/b", "bob", 50, &h2) == ConnectionBook::Added::added);
  CHECK(expired(book, 49).empty());
  CHECK(expired(book, 50) == std::vector<std::string>{"bob/b"});
  CHECK(expired(book, 99).empty());
  CHECK(expired(book, 1000) == std::vector<std::string>{"alice/a"});
  CHECK(book.size() == 0);
  CHECK(book.users() == 0);
  CHECK(expired(book, 2000).empty());
}

TEST_CASE("T raises every connection of the uid and never lowers one") {
  ConnectionBook book;
  book.add("alice/a", "alice", 100, &h1);
  book.add("alice/b", "alice", 300, &h2);
  book.add("bob", "bob", 100, &h3);
  CHECK(book.raise_expiry("alice", 200) == 1);
  CHECK(book.expiry_of("alice/a") == 200);
  CHECK(book.expiry_of("alice/b") == 300);
  CHECK(book.raise_expiry("nobody", 500) == 0);
  // The old entry of alice/a at 100 is stale: only bob goes at 100.
  CHECK(expired(book, 100) == std::vector<std::string>{"bob"});
  CHECK(expired(book, 250) == std::vector<std::string>{"alice/a"});
  CHECK(expired(book, 300) == std::vector<std::string>{"alice/b"});
}

TEST_CASE("a disconnect forgets only that connection and not a later take-over of its id") {
  ConnectionBook book;
  book.add("alice/a", "alice", 100, &h1);
  // A new connection with the same client id logs in before the old one is closed.
  CHECK(book.add("alice/a", "alice", 500, &h2) == ConnectionBook::Added::replaced);
  CHECK_FALSE(book.remove("alice/a", &h1));
  CHECK(book.expiry_of("alice/a") == 500);
  CHECK(expired(book, 100).empty());  // the first login's expiry is stale
  CHECK(book.remove("alice/a", &h2));
  CHECK(book.size() == 0);
  CHECK(expired(book, 1000).empty());
}

TEST_CASE("k keeps the connection that sent the latest login and without one it keeps none") {
  ConnectionBook book;
  book.add("alice/phone", "alice", 100, &h1);
  book.add("alice/laptop", "alice", 100, &h2);
  auto others = book.all_but_latest_login("alice");
  std::sort(others.begin(), others.end());
  CHECK(others == std::vector<std::string>{"alice/laptop", "alice/phone"});
  CHECK(book.note_login("alice", "alice/laptop"));
  CHECK(book.all_but_latest_login("alice") == std::vector<std::string>{"alice/phone"});
  // Only its own tracked connection counts as a uid's login.
  CHECK_FALSE(book.note_login("bob", "alice/phone"));
  CHECK_FALSE(book.note_login("alice", "alice/unknown"));
  CHECK(book.all_but_latest_login("alice") == std::vector<std::string>{"alice/phone"});
  // The login connection goes: none is kept any more.
  book.remove("alice/laptop", &h2);
  CHECK(book.all_but_latest_login("alice") == std::vector<std::string>{"alice/phone"});
  CHECK(book.all_but_latest_login("nobody").empty());
}

TEST_CASE("the book is bounded and the heap does not grow with stale entries") {
  ConnectionBook book(3);
  CHECK(book.add("a", "a", 10, &h1) == ConnectionBook::Added::added);
  CHECK(book.add("b", "b", 10, &h1) == ConnectionBook::Added::added);
  CHECK(book.add("c", "c", 10, &h1) == ConnectionBook::Added::added);
  CHECK(book.add("d", "d", 10, &h1) == ConnectionBook::Added::full);
  CHECK(book.add("c", "c", 20, &h2) == ConnectionBook::Added::replaced);  // known id: fine
  CHECK(book.size() == 3);

  ConnectionBook busy;
  busy.add("alice", "alice", 10, &h1);
  for (int i = 0; i < 100000; ++i) busy.raise_expiry("alice", 11 + i);
  CHECK(busy.heap_size() < 5000);
  CHECK(expired(busy, 100009).empty());
  CHECK(expired(busy, 100010) == std::vector<std::string>{"alice"});
  for (int i = 0; i < 100000; ++i) {
    busy.add("c" + std::to_string(i % 10), "u", 5 + i, &h1);
    busy.remove("c" + std::to_string(i % 10), &h1);
  }
  CHECK(busy.size() == 0);
  CHECK(busy.heap_size() <= 1024);
}

TEST_CASE("login requests are recognised by their topic only") {
  const std::string head = "rtm/req/";
  CHECK(login_request_uid(head, "rtm/req/alice/login") == std::string_view("alice"));
  CHECK(login_request_uid(head, "rtm/req/alice/login?msg_id=1&token=x") ==
        std::string_view("alice"));
  CHECK(login_request_uid(head, "rtm/req/alice/login?msg_id=a/b") == std::string_view("alice"));
  CHECK_FALSE(login_request_uid(head, "rtm/req/alice/logout?msg_id=1"));
  CHECK_FALSE(login_request_uid(head, "rtm/req/alice/loginx"));
  CHECK_FALSE(login_request_uid(head, "rtm/req/alice/join?msg_id=1"));
  CHECK_FALSE(login_request_uid(head, "rtm/req/alice"));
  CHECK_FALSE(login_request_uid(head, "rtm/req//login"));
  CHECK_FALSE(login_request_uid(head, "rtm/u/alice/res/login"));
  CHECK_FALSE(login_request_uid(head, "rtmx/req/alice/login"));
  CHECK(login_request_uid("acme/rtm/req/", "acme/rtm/req/bob/login") == std::string_view("bob"));
}

TEST_CASE("the log budget lets a few lines through per window and counts the others") {
  LogBudget budget(2, 60);
  std::uint64_t suppressed = 99;
  CHECK(budget.allow(1000, suppressed));
  CHECK(suppressed == 0);
  CHECK(budget.allow(1001, suppressed));
  CHECK_FALSE(budget.allow(1002, suppressed));
  CHECK_FALSE(budget.allow(1003, suppressed));
  CHECK(budget.allow(1060, suppressed));
  CHECK(suppressed == 2);
}

TEST_CASE("applying a message reports the skipped records and the first reason") {
  Table t("rtm");
  ReadResult read;
  t.apply_message("rtm-grants 1\nB 1\nS alice\nS bad/uid\nQ\nF 1\n", &read);
  CHECK(t.synced());
  CHECK(read.records == 3);
  CHECK(read.skipped == 2);
  CHECK(read.first_error == "bad uid");
}
