// The HTTP proxy of module RPC: building calls from request URIs (pure), the mqant-style
// answer, and the pool of threads that make the calls with cpp-httplib.
#include "rtm/mapping/json.hpp"
#include "rtm/gateway/http_proxy.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <set>

#include "rtm/gateway/json.hpp"
#include "rtm/topics/names.hpp"
#include "rtm/util/ascii.hpp"
#include "rtm/util/base64.hpp"

namespace rtm::gateway::http {
namespace {

using json::Document;

bool same_name(std::string_view a, std::string_view b) {
  return util::ascii_lower(a) == util::ascii_lower(b);
}

bool is_unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-encodes what may not appear raw in a path (or a query, where '?' is allowed too).
// Existing escapes are kept (the URI parser checked them already), except those of
// unreserved characters, which are decoded as RFC 3986 6.2.2.2 normalises them: a client
// writes '.' as %2E where the broker would turn it into a level separator (RabbitMQ), and
// the backend gets "one.json", not "one%2Ejson".
std::string encode(std::string_view raw, bool query) {
  static constexpr std::string_view kKeep = "!$&'()*+,;=:@/%";
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char c = raw[i];
    if (c == '%' && i + 2 < raw.size() && hex_value(raw[i + 1]) >= 0 &&
        hex_value(raw[i + 2]) >= 0) {
      const char decoded = static_cast<char>(hex_value(raw[i + 1]) * 16 + hex_value(raw[i + 2]));
      if (is_unreserved(decoded)) {
        out += decoded;
        i += 2;
        continue;
      }
    }
    if (is_unreserved(c) || kKeep.find(c) != std::string_view::npos || (query && c == '?')) {
      out += c;
    } else {
      const auto b = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 15];
    }
  }
  return out;
}

// The raw path (with its leading '/', possibly with ";params") and raw query of an
// absolute URI that parse_uri accepted.
std::pair<std::string_view, std::string_view> raw_path_query(std::string_view raw) {
  const auto authority = raw.find("://") + 3;
  const auto question = raw.find('?');
  const auto before_query = raw.substr(0, question);
  auto path_start = before_query.find('/', authority);
  std::string_view path =
      path_start == std::string_view::npos ? std::string_view() : before_query.substr(path_start);
  std::string_view query =
      question == std::string_view::npos ? std::string_view() : raw.substr(question + 1);
  return {path, query};
}

// "." and ".." segments (also percent-encoded, also as "..;x") would let a request climb
// out of the backend's base path.
bool has_dot_segment(std::string_view raw_path) {
  auto decoded = topics::percent_decode(raw_path);
  const std::string path = decoded ? *decoded : std::string(raw_path);
  std::size_t start = 0;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string_view segment(path.data() + start, end - start);
    segment = segment.substr(0, segment.find(';'));
    if (segment == "." || segment == "..") return true;
    start = end + 1;
  }
  return false;
}

// The raw query without its msg_id pair(s).
std::string query_without_msg_id(std::string_view query) {
  std::string out;
  std::size_t start = 0;
  while (start <= query.size()) {
    auto end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    const auto pair = query.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    auto key = topics::percent_decode(pair.substr(0, pair.find('=')));
    if (key && *key == "msg_id") continue;
    if (!out.empty()) out += '&';
    out += pair;
  }
  return out;
}

bool is_token_char(char c) {
  return is_unreserved(c) || std::string_view("!#$%&'*+^`|").find(c) != std::string_view::npos;
}

std::optional<std::string> header_name_error(std::string_view name) {
  if (name.empty()) return "an empty header name";
  for (char c : name) {
    if (!is_token_char(c)) return "header name \"" + std::string(name) + "\" has a bad character";
  }
  return std::nullopt;
}

std::optional<std::string> header_value_error(std::string_view name, std::string_view value) {
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') {
      return "header " + std::string(name) + " has a line break or NUL in its value";
    }
  }
  return std::nullopt;
}

const std::set<std::string>& methods() {
  static const std::set<std::string> m{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
  return m;
}

bool hop_by_hop(std::string_view name) {
  static const std::set<std::string> h{"connection",          "keep-alive", "proxy-authenticate",
                                       "proxy-authorization", "te",         "trailer",
                                       "transfer-encoding",   "upgrade"};
  return h.count(util::ascii_lower(name)) > 0;
}

std::string describe(httplib::Error error, const HttpBackendConfig& backend) {
  const std::string where =
      backend.scheme + "://" + backend.host + ":" + std::to_string(backend.port);
  switch (error) {
    case httplib::Error::Connection:
      return "cannot connect to " + where;
    case httplib::Error::Read:
      return "the connection to " + where + " closed before a whole response";
    case httplib::Error::Write:
      return "sending the request to " + where + " failed";
    case httplib::Error::SSLConnection:
      return "the TLS handshake with " + where + " failed";
    case httplib::Error::SSLServerVerification:
      return "the TLS certificate of " + where + " did not verify";
    case httplib::Error::SSLLoadingCerts:
      return "the CA certificates for " + where + " cannot be loaded";
    default:
      return "the call to " + where + " failed (" + httplib::to_string(error) + ")";
  }
}

Failure bad_param(std::string message) {
  return failure(ErrorCode::invalid_parameter, std::move(message));
}

}  // namespace

Outcome<Call> build_call(const std::string& name, const HttpBackendConfig& backend,
                         const topics::Uri& uri, std::string_view payload, const std::string& uid,
                         std::size_t max_body_bytes) {
  Document doc;
  if (payload.empty()) {
    doc.SetObject();
  } else {
    (void)mapping::parse_untrusted_json(payload, doc);  // a refused one stays null
    if (doc.HasParseError() || !doc.IsObject()) {
      return failure(ErrorCode::bad_json,
                     "the payload of an HTTP proxy request must be a JSON object "
                     "{\"Method\",\"Header\",\"Body\"}");
    }
  }
  for (const auto& m : doc.GetObject()) {
    const std::string_view key(m.name.GetString(), m.name.GetStringLength());
    if (key != "Method" && key != "Header" && key != "Body") {
      return bad_param("unknown field \"" + std::string(key) +
                       "\": an HTTP proxy request takes Method, Header and Body");
    }
  }

  Call call;
  call.backend = name;
  call.config = backend;
  call.timeout_ms = backend.timeout_ms;
  call.max_body_bytes = max_body_bytes;
  call.method = "GET";
  if (doc.HasMember("Method")) {
    if (!doc["Method"].IsString()) return bad_param("Method must be a string such as \"POST\"");
    std::string method = doc["Method"].GetString();
    for (char& c : method) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    if (!methods().count(method)) {
      return bad_param(
          "Method must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, got \"" +
          method.substr(0, 16) + "\"");
    }
    call.method = method;
  }

  bool json_body = false;
  if (doc.HasMember("Body") && !doc["Body"].IsNull()) {
    if (doc["Body"].IsString()) {
      call.body.assign(doc["Body"].GetString(), doc["Body"].GetStringLength());
    } else {
      call.body = json::dump(doc["Body"]);
      json_body = true;
    }
  }

  // Caller headers: only those the backend lets through; never the uid header or one the
  // configuration sets itself.
  auto passes = [&backend](std::string_view header) {
    if (same_name(header, backend.uid_header)) return false;
    for (const auto& h : backend.headers) {
      if (same_name(header, h.first)) return false;
    }
    for (const auto& p : backend.pass_headers) {
      if (same_name(header, p)) return true;
    }
    return false;
  };
  bool has_content_type = false;
  if (doc.HasMember("Header") && !doc["Header"].IsNull()) {
    if (!doc["Header"].IsObject()) {
      return bad_param("Header must be an object of name: value or name: [values]");
    }
    for (const auto& h : doc["Header"].GetObject()) {
      const std::string header(h.name.GetString(), h.name.GetStringLength());
      if (auto why = header_name_error(header)) return bad_param(*why);
      std::vector<std::string> values;
      if (h.value.IsString()) {
        values.emplace_back(h.value.GetString(), h.value.GetStringLength());
      } else if (h.value.IsArray()) {
        for (const auto& v : h.value.GetArray()) {
          if (!v.IsString()) return bad_param("header " + header + " must hold strings");
          values.emplace_back(v.GetString(), v.GetStringLength());
        }
      } else {
        return bad_param("header " + header + " must be a string or a list of strings");
      }
      for (const auto& v : values) {
        if (auto why = header_value_error(header, v)) return bad_param(*why);
      }
      if (!passes(header)) continue;  // dropped: the backend does not take it from callers
      if (same_name(header, "Content-Type")) has_content_type = true;
      for (auto& v : values) call.headers.emplace_back(header, std::move(v));
    }
  }
  for (const auto& h : backend.headers) {
    if (same_name(h.first, "Content-Type")) has_content_type = true;
    call.headers.push_back(h);
  }
  if (json_body && !has_content_type) call.headers.emplace_back("Content-Type", "application/json");
  call.headers.emplace_back(backend.uid_header, uid);

  const auto [raw_path, raw_query] = raw_path_query(uri.raw);
  if (has_dot_segment(raw_path)) {
    return failure(ErrorCode::invalid_uri,
                   "the path has a \".\" or \"..\" segment; HTTP proxy paths stay below the "
                   "backend's base URL");
  }
  call.target = backend.base_path + encode(raw_path, false);
  if (call.target.empty()) call.target = "/";
  const std::string query = query_without_msg_id(raw_query);
  if (!query.empty()) call.target += "?" + encode(query, true);
  return call;
}

std::string answer_json(const Result& result) {
  rapidjson::StringBuffer buf;
  json::Writer w(buf);
  w.StartObject();
  w.Key("StatusCode");
  w.Int(result.status);
  w.Key("Header");
  w.StartObject();
  // Repeated headers are joined with ", " (RFC 9110 §5.3), in the order received.
  std::vector<std::pair<std::string, std::string>> joined;
  for (const auto& [name, value] : result.headers) {
    if (hop_by_hop(name) || !topics::is_valid_utf8(name) || !topics::is_valid_utf8(value)) continue;
    // Captured through a reference: C++17 lambdas cannot capture a structured binding.
    const auto& header_name = name;
    auto it = std::find_if(joined.begin(), joined.end(),
                           [&](const auto& j) { return same_name(j.first, header_name); });
    if (it == joined.end()) {
      joined.emplace_back(name, value);
    } else {
      it->second += ", " + value;
    }
  }
  for (const auto& [name, value] : joined) {
    json::write_string(w, name);
    json::write_string(w, value);
  }
  w.EndObject();
  w.Key("Body");
  const bool text =
      topics::is_valid_utf8(result.body) && result.body.find('\0') == std::string::npos;
  json::write_string(w, text ? result.body : util::base64_encode(result.body));
  if (!text) {
    w.Key("BodyEncoding");
    w.String("base64");
  }
  w.Key("Err");
  w.String("");
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());
}

// ------------------------------------------------------------------ Pool

struct Pool::Worker {
  std::thread thread;
  std::atomic<bool> finished{false};
  std::mutex mutex;  // guards `current`
  httplib::Client* current = nullptr;
  // One keep-alive client per backend, with the origin it talks to; touched only by this
  // worker's thread.
  struct Client {
    std::string origin;
    std::unique_ptr<httplib::Client> client;
  };
  std::map<std::string, Client> clients;
};

Pool::Pool(int threads) {
  const int n = std::max(1, threads);
  for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>());
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->thread = std::thread([this, worker] { run(*worker); });
  }
}

Pool::~Pool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  // A call may be between taking its job and opening its socket when we look, so keep
  // aborting until every thread is out.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (auto& w : workers_) {
    while (!w->finished && std::chrono::steady_clock::now() < give_up) {
      {
        std::lock_guard<std::mutex> lock(w->mutex);
        if (w->current) w->current->stop();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void Pool::submit(Call call, std::function<void(Result)> done) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return;
    queue_.emplace_back(std::move(call), std::move(done));
  }
  wake_.notify_one();
}

std::size_t Pool::queued() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

void Pool::run(Worker& w) {
  while (true) {
    std::pair<Call, std::function<void(Result)>> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    const Call& call = job.first;
    Result result;
    const auto started = std::chrono::steady_clock::now();
    try {
      const HttpBackendConfig& backend = call.config;
      auto& entry = w.clients[call.backend];
      std::string host_port =
          backend.scheme + "://" + backend.host + ":" + std::to_string(backend.port);
      const std::string origin = host_port + "|" + backend.ca_file;
      if (entry.origin != origin) entry = {origin, nullptr};  // reconfigured: a fresh client
      auto& client = entry.client;
      if (!client) {
        client = std::make_unique<httplib::Client>(host_port);
        client->set_keep_alive(true);
        client->set_follow_location(false);
        client->set_url_encode(false);  // build_call encoded the target already
        client->set_tcp_nodelay(true);
        if (backend.scheme == "https") {
          client->enable_server_certificate_verification(true);
          if (!backend.ca_file.empty()) client->set_ca_cert_path(backend.ca_file);
        }
      }
      const auto timeout = std::chrono::milliseconds(call.timeout_ms);
      client->set_connection_timeout(timeout);
      client->set_read_timeout(timeout);
      client->set_write_timeout(timeout);

      httplib::Request req;
      req.method = call.method;
      req.path = call.target;
      for (const auto& [name, value] : call.headers) req.headers.emplace(name, value);
      req.body = call.body;
      bool too_big = false;
      std::string body;
      req.content_receiver = [&](const char* data, std::size_t len, std::uint64_t, std::uint64_t) {
        if (body.size() + len > call.max_body_bytes) {
          too_big = true;
          return false;
        }
        body.append(data, len);
        return true;
      };
      {
        std::lock_guard<std::mutex> lock(w.mutex);
        w.current = client.get();
      }
      httplib::Response res;
      httplib::Error error = httplib::Error::Success;
      const bool ok = client->send(req, res, error);
      {
        std::lock_guard<std::mutex> lock(w.mutex);
        w.current = nullptr;
      }
      if (ok) {
        result.kind = Result::Kind::completed;
        result.status = res.status;
        for (const auto& [name, value] : res.headers) result.headers.emplace_back(name, value);
        result.body = std::move(body);
      } else {
        w.clients.erase(call.backend);  // start the next call on a fresh connection
        const bool slow = std::chrono::steady_clock::now() - started >= timeout;
        if (too_big) {
          result.error = "the response body is over modules.max_result_bytes (" +
                         std::to_string(call.max_body_bytes) + " bytes)";
        } else if (error == httplib::Error::ConnectionTimeout ||
                   (slow && (error == httplib::Error::Read || error == httplib::Error::Write))) {
          result.kind = Result::Kind::timeout;
          result.error = "no answer within " + std::to_string(call.timeout_ms) + " ms";
        } else {
          result.error = describe(error, backend);
        }
      }
    } catch (const std::exception& e) {
      result.kind = Result::Kind::failed;
      result.error = std::string("internal error: ") + e.what();
      w.clients.erase(call.backend);
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) break;
    }
    try {
      job.second(std::move(result));
    } catch (const std::exception& e) {
      spdlog::error("http proxy: result callback failed: {}", e.what());
    }
  }
  w.finished = true;
}

}  // namespace rtm::gateway::http
