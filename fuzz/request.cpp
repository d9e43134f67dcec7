// Fuzz target: a request as the gateway's Core takes it off the broker, topic and payload
// (gateway/core/ and the RTM operations of gateway/rtm/). The contract of
// docs/protocol.md: every request gets exactly one answer on its mirrored topic, a JSON
// object that is valid UTF-8, carrying the request's msg_id; a body that is not blank or
// one JSON object is an error; a repeat of the same request is answered with the same
// bytes and not executed again.
//
// Input: the first line is the request topic after "rtm/req/" ("alice/join?msg_id=1"), the
// rest is the payload. Each input gets a fresh Core in which alice and bob are logged in,
// both are members of room-42, and alice publishes in its topic "input", so that fuzzed
// requests from them reach the operations' own parameter checks.
#include <rapidjson/document.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "check.hpp"
#include "rtm/gateway/core.hpp"
#include "rtm/gateway/operations.hpp"
#include "rtm/tokens/jwt.hpp"
#include "rtm/topics/names.hpp"

namespace {

using rtm::gateway::Config;
using rtm::gateway::Core;
using rtm::gateway::Message;
using rtm::gateway::Outbox;
using rtm::topics::is_valid_utf8;

constexpr std::int64_t kNowMs = 1700000000000;
constexpr std::int64_t kTokenExpiresS = kNowMs / 1000 + 3600;

struct Published {
  std::string topic;
  std::string payload;
  int qos;
  bool retain;
};

class RecordingOutbox : public Outbox {
 public:
  bool publish(const std::string& topic, std::string_view payload, int qos, bool retain) override {
    sent.push_back({topic, std::string(payload), qos, retain});
    return true;
  }
  std::vector<Published> sent;
};

const Config& config() {
  static const Config config = [] {
    Config c;
    c.topics.prefix = "rtm";
    c.auth.token_secret = "fuzz-secret-0123456789abcdef0123456789";
    return c;
  }();
  return config;
}

std::string token_for(const std::string& uid) {
  return rtm::gateway::sign_token({uid, kNowMs / 1000, kTokenExpiresS, std::nullopt, std::nullopt},
                                  config().auth.token_secret);
}

// A JSON text as the contract wants it: the whole text one value (no NUL, which rapidjson
// would take for the end, no trailing bytes), valid UTF-8.
bool parse_strict(const std::string& text, rapidjson::Document& doc) {
  if (std::memchr(text.data(), '\0', text.size()) != nullptr) return false;
  if (!is_valid_utf8(text)) return false;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(text.data(), text.size());
  return !doc.HasParseError();
}

struct Answer {
  std::string msg_id;
  int code;
};

// Checks one answer and reads it.
Answer check_answer(const Published& answer) {
  RTM_FUZZ_CHECK(answer.qos == 1 && !answer.retain, "answers go at QoS 1, not retained");
  RTM_FUZZ_CHECK(!rtm::topics::topic_name_error(answer.topic), "the answer topic is a valid topic");
  rapidjson::Document doc;
  if (!parse_strict(answer.payload, doc)) {
    std::fprintf(stderr, "answer on %s: %s\n", answer.topic.c_str(), answer.payload.c_str());
  }
  RTM_FUZZ_CHECK(parse_strict(answer.payload, doc), "the answer is one JSON text, valid UTF-8");
  RTM_FUZZ_CHECK(doc.IsObject(), "the answer is a JSON object");
  RTM_FUZZ_CHECK(doc.HasMember("msg_id") && doc["msg_id"].IsString(), "the answer has msg_id");
  RTM_FUZZ_CHECK(doc.HasMember("code") && doc["code"].IsInt(), "the answer has a numeric code");
  const int code = doc["code"].GetInt();
  if (code == 0) {
    RTM_FUZZ_CHECK(doc.HasMember("result") && !doc.HasMember("error") && doc.MemberCount() == 3,
                   "a success carries msg_id, code and result");
  } else {
    RTM_FUZZ_CHECK(doc.HasMember("error") && doc["error"].IsString() && doc.HasMember("message") &&
                       doc["message"].IsString() && doc.MemberCount() == 4,
                   "an error carries msg_id, code, error and message");
    const auto name = rtm::gateway::error_name(static_cast<rtm::gateway::ErrorCode>(code));
    RTM_FUZZ_CHECK(
        name == std::string_view(doc["error"].GetString(), doc["error"].GetStringLength()),
        "the error name is the code's");
  }
  return {std::string(doc["msg_id"].GetString(), doc["msg_id"].GetStringLength()), code};
}

// Answers are on P/u/{uid}/res or below; the rest are events of the operations.
bool is_answer(const std::string& topic) {
  if (topic.rfind("rtm/u/", 0) != 0) return false;
  const std::size_t uid_end = topic.find('/', 6);
  if (uid_end == std::string::npos) return false;
  return topic.compare(uid_end + 1, 3, "res") == 0 &&
         (topic.size() == uid_end + 4 || topic[uid_end + 4] == '/');
}

struct Gateway {
  RecordingOutbox outbox;
  std::unique_ptr<Core> core;

  Gateway() {
    core = std::make_unique<Core>(config(), outbox, [] { return kNowMs; });
    rtm::gateway::register_basic_operations(*core);
    rtm::gateway::register_rtm_operations(*core);
    setup("alice/login?msg_id=s1", "{\"token\":\"" + token_for("alice") + "\"}");
    setup("bob/login?msg_id=s1", "{\"token\":\"" + token_for("bob") + "\"}");
    setup("alice/join?channel=room-42&msg_id=s2", "");
    setup("bob/join?channel=room-42&msg_id=s2", "");
    setup("alice/join_topic?channel=room-42&topic=input&msg_id=s3", "");
    outbox.sent.clear();
  }

  void send(const std::string& topic, std::string_view payload) {
    core->on_message(Message{topic, std::string(payload), 1, false, false, {}});
  }

  // A request of the set-up, which must succeed.
  void setup(const std::string& suffix, const std::string& payload) {
    outbox.sent.clear();
    send("rtm/req/" + suffix, payload);
    for (const Published& p : outbox.sent) {
      if (!is_answer(p.topic)) continue;
      rapidjson::Document doc;
      doc.Parse(p.payload.data(), p.payload.size());
      RTM_FUZZ_CHECK(!doc.HasParseError() && doc["code"].GetInt() == 0, "the set-up succeeds");
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto [suffix, payload] = rtm::fuzz::split_line(rtm::fuzz::text(data, size));
  const std::string topic = "rtm/req/" + std::string(suffix);
  // The broker delivers valid topic names only.
  if (rtm::topics::topic_name_error(topic)) return 0;

  Gateway gateway;
  const rtm::topics::TopicTree& tree = gateway.core->tree();
  gateway.send(topic, payload);

  std::vector<const Published*> answers;
  for (const Published& p : gateway.outbox.sent) {
    if (is_answer(p.topic)) {
      answers.push_back(&p);
      continue;
    }
    // Events the request caused: valid topics and JSON, too.
    RTM_FUZZ_CHECK(!rtm::topics::topic_name_error(p.topic), "an event topic is valid");
    rapidjson::Document doc;
    RTM_FUZZ_CHECK(parse_strict(p.payload, doc) && doc.IsObject(), "an event is a JSON object");
  }

  const auto parsed = tree.parse(topic);
  if (!parsed) {
    // "rtm/req/{uid}" without a URI: answered on P/u/{uid}/res, except when no uid can be
    // named at all (empty or invalid level), which leaves no topic to answer on.
    std::string uid(suffix);
    if (!uid.empty() && uid.back() == '/') uid.pop_back();
    if (rtm::topics::name_error(uid)) {
      RTM_FUZZ_CHECK(answers.empty(), "no answer without a uid");
      return 0;
    }
    RTM_FUZZ_CHECK(answers.size() == 1, "exactly one answer");
    RTM_FUZZ_CHECK(answers[0]->topic == "rtm/u/" + uid + "/res", "answered on P/u/{uid}/res");
    check_answer(*answers[0]);
    return 0;
  }
  RTM_FUZZ_CHECK(parsed->kind == rtm::topics::TopicKind::request, "a request topic");
  const auto& limits = gateway.core->config().requests;
  if (topic.size() > limits.max_topic_bytes ||
      rtm::topics::level_count(topic) > limits.max_topic_levels) {
    // Its mirror would be longer still: TOPIC_TOO_LONG on the fixed topic, or nothing when
    // the uid level names no uid.
    if (rtm::topics::name_error(parsed->uid)) {
      RTM_FUZZ_CHECK(answers.empty(), "no answer without a uid");
      return 0;
    }
    RTM_FUZZ_CHECK(answers.size() == 1, "exactly one answer");
    RTM_FUZZ_CHECK(answers[0]->topic == "rtm/u/" + parsed->uid + "/res", "answered on P/u/{uid}/res");
    RTM_FUZZ_CHECK(check_answer(*answers[0]).code == 19, "TOPIC_TOO_LONG");
    return 0;
  }
  RTM_FUZZ_CHECK(answers.size() == 1, "exactly one answer");
  const Published first = *answers[0];
  RTM_FUZZ_CHECK(first.topic == tree.response(parsed->uid, parsed->uri),
                 "answered on the mirrored topic");
  const Answer answer = check_answer(first);
  const std::string& msg_id = answer.msg_id;
  // A body is empty (blank) or one JSON object: anything else is malformed and must not
  // succeed ("{}\0junk" is not "{}").
  rapidjson::Document body;
  const bool blank = payload.find_first_not_of(" \t\r\n") == std::string_view::npos;
  if (!blank && !(parse_strict(std::string(payload), body) && body.IsObject())) {
    RTM_FUZZ_CHECK(answer.code != 0, "a malformed body gets an error answer");
  }
  if (auto uri = rtm::topics::parse_uri(parsed->uri)) {
    // A msg_id over requests.max_msg_id_bytes is not echoed (nor remembered).
    const bool too_long = uri->msg_id.size() > gateway.core->config().requests.max_msg_id_bytes;
    RTM_FUZZ_CHECK(msg_id == (too_long ? std::string() : uri->msg_id),
                   "the answer carries the request's msg_id");
  }
  if (msg_id.empty()) return 0;

  // A redelivery (QoS 1) is answered from the first answer, not executed again.
  gateway.outbox.sent.clear();
  gateway.send(topic, payload);
  RTM_FUZZ_CHECK(gateway.outbox.sent.size() == 1, "a repeat is answered once, without events");
  RTM_FUZZ_CHECK(gateway.outbox.sent[0].topic == first.topic &&
                     gateway.outbox.sent[0].payload == first.payload,
                 "a repeat gets the first answer");
  return 0;
}
