#pragma once
// Small RapidJSON helpers for request bodies and answers (internal).
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rtm::sdk::detail::json {

// Builds one JSON object: Object().str("channel", c).list("users", u).text()
class Object {
 public:
  Object() : writer_(buffer_) { writer_.StartObject(); }
  Object& str(std::string_view key, std::string_view value) {
    key_(key);
    writer_.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
    return *this;
  }
  Object& list(std::string_view key, const std::vector<std::string>& values) {
    key_(key);
    writer_.StartArray();
    for (const auto& v : values) writer_.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    writer_.EndArray();
    return *this;
  }
  Object& int64(std::string_view key, std::int64_t value) {
    key_(key);
    writer_.Int64(value);
    return *this;
  }
  Object& boolean(std::string_view key, bool value) {
    key_(key);
    writer_.Bool(value);
    return *this;
  }
  // `value`: JSON text written as it is (an array or object made elsewhere).
  Object& raw(std::string_view key, std::string_view value, rapidjson::Type type) {
    key_(key);
    writer_.RawValue(value.data(), value.size(), type);
    return *this;
  }
  // An object of strings: {"k":"v",...}.
  template <class Map>
  Object& map(std::string_view key, const Map& values) {
    key_(key);
    writer_.StartObject();
    for (const auto& [k, v] : values) {
      key_(k);
      writer_.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
    }
    writer_.EndObject();
    return *this;
  }
  std::string text() {
    writer_.EndObject();
    return std::string(buffer_.GetString(), buffer_.GetSize());
  }

 private:
  void key_(std::string_view key) {
    writer_.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  }
  rapidjson::StringBuffer buffer_;
  rapidjson::Writer<rapidjson::StringBuffer> writer_;
};

inline std::string str(const rapidjson::Value& v, const char* key, std::string fallback = "") {
  if (!v.IsObject()) return fallback;
  auto it = v.FindMember(key);
  if (it == v.MemberEnd() || !it->value.IsString()) return fallback;
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

inline std::int64_t int64(const rapidjson::Value& v, const char* key, std::int64_t fallback = 0) {
  if (!v.IsObject()) return fallback;
  auto it = v.FindMember(key);
  if (it == v.MemberEnd() || !it->value.IsInt64()) return fallback;
  return it->value.GetInt64();
}

inline bool boolean(const rapidjson::Value& v, const char* key, bool fallback = false) {
  if (!v.IsObject()) return fallback;
  auto it = v.FindMember(key);
  if (it == v.MemberEnd() || !it->value.IsBool()) return fallback;
  return it->value.GetBool();
}

inline std::vector<std::string> strings(const rapidjson::Value& v, const char* key) {
  std::vector<std::string> out;
  if (!v.IsObject()) return out;
  auto it = v.FindMember(key);
  if (it == v.MemberEnd() || !it->value.IsArray()) return out;
  for (const auto& item : it->value.GetArray()) {
    if (item.IsString()) out.emplace_back(item.GetString(), item.GetStringLength());
  }
  return out;
}

inline std::string dump(const rapidjson::Value& v) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  v.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace rtm::sdk::detail::json
