#include "rtm/gateway/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>

#include "rtm/gateway/json.hpp"
#include "rtm/topics/names.hpp"

namespace rtm::gateway {
namespace {

struct RequestContext {
  std::string_view uid;
  std::string_view msg_id;
};
thread_local RequestContext t_request;

// "component: text" -> component, when the first word is a lower-case identifier.
std::string_view event_of(std::string_view text, std::string_view* rest) {
  const auto colon = text.find(": ");
  if (colon == std::string_view::npos || colon == 0 || colon > 24) return {};
  for (char c : text.substr(0, colon)) {
    if (!((c >= 'a' && c <= 'z') || c == '_' || c == '-' || (c >= '0' && c <= '9'))) return {};
  }
  *rest = text.substr(colon + 2);
  return text.substr(0, colon);
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto time = std::chrono::system_clock::to_time_t(msg.time);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(msg.time.time_since_epoch()).count() %
        1000;
    std::tm tm{};
    gmtime_r(&time, &tm);
    char stamp[40];
    const auto n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(stamp + n, sizeof stamp - n, ".%03dZ", static_cast<int>(ms));
    const auto level = spdlog::level::to_string_view(msg.level);
    const auto line = json_log_line(stamp, std::string_view(level.data(), level.size()),
                                    std::string_view(msg.payload.data(), msg.payload.size()),
                                    t_request.uid, t_request.msg_id);
    dest.append(line.data(), line.data() + line.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

std::string json_log_line(std::string_view time, std::string_view level, std::string_view text,
                          std::string_view uid, std::string_view msg_id) {
  std::string_view message = text;
  const auto event = event_of(text, &message);
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  w.Key("time");
  w.String(time.data(), static_cast<rapidjson::SizeType>(time.size()));
  w.Key("level");
  w.String(level.data(), static_cast<rapidjson::SizeType>(level.size()));
  if (!event.empty()) {
    w.Key("event");
    w.String(event.data(), static_cast<rapidjson::SizeType>(event.size()));
  }
  const auto clean = topics::to_valid_utf8(message);
  w.Key("msg");
  w.String(clean.data(), static_cast<rapidjson::SizeType>(clean.size()));
  if (!uid.empty()) {
    const auto u = topics::to_valid_utf8(uid);
    w.Key("uid");
    w.String(u.data(), static_cast<rapidjson::SizeType>(u.size()));
  }
  if (!msg_id.empty()) {
    const auto m = topics::to_valid_utf8(msg_id);
    w.Key("msg_id");
    w.String(m.data(), static_cast<rapidjson::SizeType>(m.size()));
  }
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

void setup_logging(const LogConfig& config) {
  auto logger = spdlog::get("rtm");
  if (!logger) logger = spdlog::stderr_color_mt("rtm");
  spdlog::set_default_logger(logger);
  if (config.format == "json") {
    spdlog::set_formatter(std::make_unique<JsonFormatter>());
  } else {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
  set_log_level(config.level);
}

void set_log_level(const std::string& level) {
  spdlog::set_level(spdlog::level::from_str(level));
}

RequestLogScope::RequestLogScope(std::string_view uid, std::string_view msg_id)
    : saved_uid_(t_request.uid), saved_msg_id_(t_request.msg_id) {
  t_request = {uid, msg_id};
}

RequestLogScope::~RequestLogScope() {
  t_request = {saved_uid_, saved_msg_id_};
}

}  // namespace rtm::gateway
