// im-worker: a node of module `im` for rtm-mqtt-gateway's module RPC (docs/modules.md),
// after the IM example of mqant. A device sends
//
//   mosquitto_pub -t 'rtm/req/alice/im://modulus/remove_feeds_member?msg_id=1002' -m
//   '{"feeds_id":"f1"}'
//
// the gateway routes it to a live node of `im` on rtm/rpc/im/{node}, this worker answers
// {"Trace":..,"Error":"","Result":"success"}, and alice reads it on
// rtm/u/alice/res/im://modulus/remove_feeds_member?msg_id=1002.
//
// The worker side of the protocol, in short:
//   - connect with a Will: retained {"state":"down","session":S} on P/nodes/{module}/{node};
//   - subscribe to P/rpc/{module}/{node} (QoS 0), then publish retained {"state":"up","session":S};
//   - answer each request {"id","uid","method","params","body","reply_to",...} on its
//     reply_to topic with {"id":..,"result":..} (or {"id":..,"error":".."}), QoS 0;
//   - push to a user by publishing to P/u/{uid}/push/{module}/{path};
//   - at a clean stop, publish retained {"state":"down","session":S} before DISCONNECT;
//   - read P/gateway/status and announce again at each "online": a gateway that starts
//     learns the live nodes from that, on brokers that do not deliver retained messages
//     through its wildcard subscription (RabbitMQ).
#include <mqtt/async_client.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <signal.h>
#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

struct Options {
  std::string broker = "tcp://127.0.0.1:1883";
  std::string node;
  std::string module = "im";
  std::string prefix = "rtm";
  std::string username;
  std::string password;
  int slow_ms = 0;
  int threads = 4;
  int keepalive_s = 10;
};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string dump(const rapidjson::Value& v) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

void log(const std::string& line) {
  static std::mutex m;
  std::lock_guard<std::mutex> lock(m);
  std::cerr << "im-worker: " << line << std::endl;
}

// A string parameter from the query params, else from the body; "" when absent.
std::string param(const rapidjson::Document& req, const char* key) {
  for (const char* where : {"params", "body"}) {
    if (req.HasMember(where) && req[where].IsObject() && req[where].HasMember(key)) {
      const auto& v = req[where][key];
      if (v.IsString()) return v.GetString();
      if (v.IsInt64()) return std::to_string(v.GetInt64());
    }
  }
  return {};
}

class Worker {
 public:
  explicit Worker(Options options)
      : options_(std::move(options)),
        node_topic_(options_.prefix + "/nodes/" + options_.module + "/" + options_.node),
        rpc_topic_(options_.prefix + "/rpc/" + options_.module + "/" + options_.node),
        status_topic_(options_.prefix + "/gateway/status"),
        client_(options_.broker, "node-" + options_.module + "-" + options_.node,
                mqtt::create_options(MQTTVERSION_3_1_1, 10000)) {
    std::random_device rd;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
    session_ = buf;
    client_.set_connected_handler([this](const std::string&) { on_connected(); });
    client_.set_connection_lost_handler(
        [](const std::string& why) { log("connection lost (" + why + "), reconnecting"); });
    client_.set_message_callback([this](mqtt::const_message_ptr m) { on_message(m); });
    for (int i = 0; i < options_.threads; ++i) pool_.emplace_back([this] { serve(); });
  }

  ~Worker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : pool_) t.join();
  }

  void connect() {
    mqtt::connect_options opts;
    opts.set_mqtt_version(MQTTVERSION_3_1_1);
    opts.set_clean_session(true);
    opts.set_keep_alive_interval(options_.keepalive_s);
    opts.set_automatic_reconnect(1, 10);
    if (!options_.username.empty()) opts.set_user_name(options_.username);
    if (!options_.password.empty()) opts.set_password(options_.password);
    opts.set_will(
        mqtt::will_options(node_topic_, announcement("down", "connection_lost"), 1, true));
    client_.connect(opts)->wait_for(std::chrono::seconds(30));
    if (!client_.is_connected()) throw std::runtime_error("cannot connect to " + options_.broker);
  }

  // Clean stop: say so (retained), then DISCONNECT (which sends no Will).
  void stop() {
    if (!client_.is_connected()) return;
    try {
      client_.publish(node_topic_, announcement("down", "shutdown"), 1, true)
          ->wait_for(std::chrono::seconds(5));
      client_.disconnect()->wait_for(std::chrono::seconds(5));
    } catch (const std::exception& e) {
      log(std::string("stop: ") + e.what());
    }
  }

 private:
  std::string announcement(const char* state, const char* reason) const {
    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("state");
    w.String(state);
    w.Key("module");
    w.String(options_.module.c_str());
    w.Key("node");
    w.String(options_.node.c_str());
    w.Key("session");
    w.String(session_.c_str());
    if (reason) {
      w.Key("reason");
      w.String(reason);
    }
    w.Key("ts");
    w.Int64(now_ms());
    w.EndObject();
    return buf.GetString();
  }

  // On every (re)connect: subscriptions first, so that no request routed after the
  // announcement is missed; then the retained announcement.
  //
  // Requests are taken at QoS 0 and answered at QoS 0: with QoS 1 Paho sends a PUBACK
  // just before the answer, and without TCP_NODELAY (Paho C has no option for it) Nagle
  // holds the answer until the broker ACKs the PUBACK, ~40 ms on Linux. A request lost with
  // a dropped connection is answered TIMEOUT by the gateway, and the session is clean, so
  // QoS 1 would not bring it back anyway.
  void on_connected() {
    client_.subscribe(rpc_topic_, 0);
    client_.subscribe(node_topic_, 1);
    client_.subscribe(status_topic_, 1);
    client_.publish(node_topic_, announcement("up", nullptr), 1, true);
    log("node " + options_.node + " of module " + options_.module + " is up on " + rpc_topic_ +
        " (session " + session_ + ")");
  }

  void on_message(mqtt::const_message_ptr m) {
    if (m->get_topic() == node_topic_) return check_announcement(m->get_payload_str());
    if (m->get_topic() == status_topic_) return on_gateway_status(m->get_payload_str());
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(m->get_payload_str());
    }
    wake_.notify_one();
  }

  // If our retained announcement was overwritten by a "down" that is not ours (an old
  // connection's Will arriving late), say "up" again. Another session's "up" means two
  // processes share this node id: report it, do not fight over the topic.
  void check_announcement(const std::string& payload) {
    rapidjson::Document d;
    d.Parse(payload.c_str());
    const std::string state =
        d.IsObject() && d.HasMember("state") && d["state"].IsString() ? d["state"].GetString() : "";
    const std::string session = d.IsObject() && d.HasMember("session") && d["session"].IsString()
                                    ? d["session"].GetString()
                                    : "";
    if (session == session_) return;
    if (state == "up") {
      log("another process announces node id " + options_.node + " (session " + session +
          "); node ids must be unique");
      return;
    }
    client_.publish(node_topic_, announcement("up", nullptr), 1, true);
  }

  // A gateway (re)connected: announce again, so that it learns this node even where the
  // broker does not hand it the retained announcement (docs/modules.md).
  void on_gateway_status(const std::string& payload) {
    rapidjson::Document d;
    d.Parse(payload.c_str());
    if (!d.IsObject() || !d.HasMember("state") || !d["state"].IsString() ||
        std::string(d["state"].GetString()) != "online") {
      return;
    }
    client_.publish(node_topic_, announcement("up", nullptr), 1, true);
  }

  void serve() {
    while (true) {
      std::string payload;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        payload = std::move(queue_.front());
        queue_.pop_front();
      }
      try {
        handle(payload);
      } catch (const std::exception& e) {
        log(std::string("request failed: ") + e.what());
      }
    }
  }

  void handle(const std::string& payload) {
    rapidjson::Document req;
    req.Parse(payload.c_str());
    if (req.HasParseError() || !req.IsObject() || !req.HasMember("id") || !req["id"].IsString() ||
        !req.HasMember("reply_to") || !req["reply_to"].IsString() || !req.HasMember("method") ||
        !req["method"].IsString()) {
      log("ignored a request that is not a module RPC envelope");
      return;
    }
    const std::string id = req["id"].GetString();
    const std::string reply_to = req["reply_to"].GetString();
    const std::string method = req["method"].GetString();
    const std::string uid =
        req.HasMember("uid") && req["uid"].IsString() ? req["uid"].GetString() : "";
    // Answers go to the gateway's answer topics only, never anywhere a request names.
    if (reply_to.rfind(options_.prefix + "/rpc-reply/", 0) != 0) {
      log("ignored request " + id + ": reply_to " + reply_to + " is not an answer topic");
      return;
    }
    if (options_.slow_ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.slow_ms));

    rapidjson::Document result(rapidjson::kObjectType);
    auto& a = result.GetAllocator();
    std::string error;          // mqant's Error: the module's own failure, relayed in the result
    std::string gateway_error;  // {"id","error"}: the gateway answers BACKEND_ERROR
    rapidjson::Value value;     // mqant's Result

    if (method == "remove_feeds_member" || method == "agree_join_feeds") {
      value.SetString("success", a);
    } else if (method == "whoami") {
      value.SetObject();
      value.AddMember("node", rapidjson::Value(options_.node.c_str(), a), a);
      value.AddMember("module", rapidjson::Value(options_.module.c_str(), a), a);
      for (const char* key : {"uid", "method", "msg_id"}) {
        if (req.HasMember(key))
          value.AddMember(rapidjson::StringRef(key), rapidjson::Value(req[key], a), a);
      }
      for (const char* key : {"params", "body"}) {
        if (req.HasMember(key))
          value.AddMember(rapidjson::StringRef(key), rapidjson::Value(req[key], a), a);
      }
    } else if (method == "sleep") {
      const std::string ms = param(req, "ms");
      int wait = 0;
      try {
        wait = ms.empty() ? 1000 : std::stoi(ms);
      } catch (const std::exception&) {
        wait = -1;
      }
      if (wait < 0 || wait > 600000) {
        error = "ms must be 0-600000";
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(wait));
        value.SetString("slept", a);
      }
    } else if (method == "push") {
      // Server push, as mqant's impush://modulus/news: straight to the user's subtree.
      std::string to = param(req, "to");
      if (to.empty()) to = uid;
      std::string path = param(req, "topic");
      if (path.empty()) path = "news";
      std::string message = "{}";
      if (req.HasMember("body") && req["body"].IsObject()) {
        const auto& body = req["body"];
        message = body.HasMember("message") ? dump(body["message"]) : dump(body);
      }
      if (to.find_first_of("/+#") != std::string::npos ||
          path.find_first_of("+#") != std::string::npos) {
        error = "bad push target";
      } else {
        client_.publish(options_.prefix + "/u/" + to + "/push/" + options_.module + "/" + path,
                        message, 1, false);
        value.SetString("success", a);
      }
    } else if (method == "fail") {
      gateway_error = "failed on purpose";
    } else {
      error = "unknown method " + method;
    }

    rapidjson::StringBuffer buf;
    Writer w(buf);
    w.StartObject();
    w.Key("id");
    w.String(id.c_str());
    if (!gateway_error.empty()) {
      w.Key("error");
      w.String(gateway_error.c_str());
    } else {
      w.Key("result");
      w.StartObject();
      w.Key("Trace");
      w.String(id.c_str());
      w.Key("Error");
      w.String(error.c_str());
      w.Key("Result");
      value.Accept(w);
      w.EndObject();
    }
    w.EndObject();
    const std::int64_t deadline = req.HasMember("deadline_ms") && req["deadline_ms"].IsInt64()
                                      ? req["deadline_ms"].GetInt64()
                                      : 0;
    if (deadline > 0 && now_ms() > deadline) {
      log("request " + id + " (" + method + ") finished after its deadline; answering anyway");
    }
    client_.publish(reply_to, buf.GetString(), buf.GetSize(), 0, false);
  }

  Options options_;
  std::string node_topic_;
  std::string rpc_topic_;
  std::string status_topic_;
  std::string session_;
  mqtt::async_client client_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::string> queue_;
  bool stopping_ = false;
  std::vector<std::thread> pool_;
};

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"im-worker: a node of module im for rtm-mqtt-gateway module RPC"};
  app.add_option("--broker", o.broker, "MQTT broker URI")->capture_default_str();
  app.add_option("--node", o.node, "node id: lower-case letters, digits, '-', '.', '_'")
      ->required();
  app.add_option("--module", o.module, "module name (the URI scheme)")->capture_default_str();
  app.add_option("--prefix", o.prefix, "topic prefix P (topics.prefix of the gateway)")
      ->capture_default_str();
  app.add_option("--username", o.username, "broker username (a service user)");
  app.add_option("--password", o.password, "broker password");
  app.add_option("--slow-ms", o.slow_ms, "delay every answer by this many ms")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "requests handled at once")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--keepalive", o.keepalive_s, "MQTT keep-alive, s")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  CLI11_PARSE(app, argc, argv);
  // The same rules as the gateway's (docs/modules.md): it ignores announcements that break them.
  auto lower_word = [](const std::string& text, const char* extra) {
    if (text.empty() || text.size() > 64) return false;
    for (char c : text) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      std::string(extra).find(c) != std::string::npos;
      if (!ok) return false;
    }
    return true;
  };
  if (!lower_word(o.node, "-._") || o.node == "modulus" || o.node == "random" ||
      o.node == "cache") {
    std::cerr << "im-worker: --node must be 1-64 lower-case letters, digits, '-', '.' or '_', "
                 "and not modulus, random or cache\n";
    return 2;
  }
  if (!lower_word(o.module, "-.") || !(o.module[0] >= 'a' && o.module[0] <= 'z') ||
      o.module == "http" || o.module == "https") {
    std::cerr << "im-worker: --module must be a lower-case letter, then lower-case letters, "
                 "digits, '-' or '.' (not http or https)\n";
    return 2;
  }

  // Signals are taken by sigwait below, so block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    Worker worker(o);
    worker.connect();
    int sig = 0;
    sigwait(&signals, &sig);
    log("stopping");
    worker.stop();
  } catch (const std::exception& e) {
    std::cerr << "im-worker: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
