#pragma once
// The HTTP proxy of module RPC (docs/modules.md): "http://NAME/path?..." and
// "https://NAME/..." call the backend NAME of config `http_backends`, never any other host.
// The request payload is {"Method","Header","Body"} and the answer
// {"StatusCode","Header","Body","Err"}, as in mqant.
//
// Calls run on a small pool of threads (cpp-httplib, blocking I/O) so that slow backends
// never hold up the gateway loop; results come back through a callback on a pool thread,
// which the caller hands to the loop with Core::post.
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "rtm/gateway/config.hpp"
#include "rtm/gateway/request.hpp"
#include "rtm/topics/uri.hpp"

namespace rtm::gateway::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

// One call to a backend, ready to send.
struct Call {
  std::string backend;  // its name in http_backends
  HttpBackendConfig config;  // as configured when the call was made (a reload may change it)
  std::string method;   // GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS
  std::string target;   // origin-form path and query: "/api/pay/one.json?a=1"
  Headers headers;
  std::string body;
  int timeout_ms = 0;
  std::size_t max_body_bytes = 0;  // a longer response body fails the call
};

struct Result {
  enum class Kind { completed, timeout, failed };
  Kind kind = Kind::failed;
  int status = 0;
  Headers headers;
  std::string body;
  std::string error;  // why it failed (kind != completed)
};

// Builds the call for an absolute http/https URI sent by `uid` with `payload` (a JSON
// object {"Method","Header","Body"}, all optional; empty = GET). The URI path and query
// are forwarded without msg_id; dot segments ("..") are refused; only headers named in
// pass_headers pass, then the configured headers and the uid header are set.
Outcome<Call> build_call(const std::string& name, const HttpBackendConfig& backend,
                         const topics::Uri& uri, std::string_view payload, const std::string& uid,
                         std::size_t max_body_bytes);

// {"StatusCode":200,"Header":{...},"Body":"...","Err":""} of a completed call. A body that
// is not UTF-8 comes base64-encoded, with "BodyEncoding":"base64".
std::string answer_json(const Result& result);

// Sends calls on `threads` threads with cpp-httplib, keeping one keep-alive connection per
// (thread, backend). Redirects are not followed (they could lead anywhere).
class Pool {
 public:
  explicit Pool(int threads);
  // Aborts calls in flight, drops queued ones (their callbacks never run), joins.
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Queues `call`; `done` runs on a pool thread once it is over.
  void submit(Call call, std::function<void(Result)> done);
  std::size_t queued() const;

 private:
  struct Worker;
  void run(Worker& worker);

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<Call, std::function<void(Result)>>> queue_;
  bool stopping_ = false;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace rtm::gateway::http
