#pragma once
// Logging set-up: levels, and the text or JSON line format (log.format). Messages follow
// "component: text" ("broker: connected to ..."); the JSON format turns the component
// into the "event" field and adds the uid and msg_id of the request being handled.
#include <string>
#include <string_view>

#include "rtm/gateway/config.hpp"

namespace rtm::gateway {

// Installs the logger on stderr with the configured format and level.
void setup_logging(const LogConfig& config);
// Changes the level at run time (SIGHUP).
void set_log_level(const std::string& level);

// The request the current thread is handling, for log lines written meanwhile.
class RequestLogScope {
 public:
  RequestLogScope(std::string_view uid, std::string_view msg_id);
  ~RequestLogScope();
  RequestLogScope(const RequestLogScope&) = delete;
  RequestLogScope& operator=(const RequestLogScope&) = delete;

 private:
  std::string_view saved_uid_;
  std::string_view saved_msg_id_;
};

// One JSON log line (without the trailing newline), for tests and the formatter.
std::string json_log_line(std::string_view time, std::string_view level, std::string_view text,
                          std::string_view uid, std::string_view msg_id);

}  // namespace rtm::gateway
