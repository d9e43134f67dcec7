#pragma once
// Small helpers over RapidJSON for building responses and events.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace rtm::gateway::json {

using Document = rapidjson::Document;
using Value = rapidjson::Value;
using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

inline Document object() {
  Document d;
  d.SetObject();
  return d;
}

inline Value str(std::string_view s, Document::AllocatorType& a) {
  return Value(s.data(), static_cast<rapidjson::SizeType>(s.size()), a);
}

inline void set(Document& d, std::string_view key, Value value) {
  d.AddMember(str(key, d.GetAllocator()), value, d.GetAllocator());
}
inline void set(Document& d, std::string_view key, std::string_view value) {
  set(d, key, str(value, d.GetAllocator()));
}
inline void set(Document& d, std::string_view key, const char* value) {
  set(d, key, std::string_view(value));
}
inline void set(Document& d, std::string_view key, const std::string& value) {
  set(d, key, std::string_view(value));
}
inline void set_int(Document& d, std::string_view key, std::int64_t value) {
  set(d, key, Value(static_cast<int64_t>(value)));
}
inline void set_bool(Document& d, std::string_view key, bool value) { set(d, key, Value(value)); }

inline Value string_array(const std::vector<std::string>& items, Document::AllocatorType& a) {
  Value arr(rapidjson::kArrayType);
  arr.Reserve(static_cast<rapidjson::SizeType>(items.size()), a);
  for (const auto& s : items) arr.PushBack(str(s, a), a);
  return arr;
}

// {"key":"value",...} of a map of strings, in the map's order.
inline Value string_map(const std::map<std::string, std::string>& items,
                        Document::AllocatorType& a) {
  Value obj(rapidjson::kObjectType);
  for (const auto& [key, value] : items) obj.AddMember(str(key, a), str(value, a), a);
  return obj;
}

inline void write_string(Writer& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}

inline std::string dump(const Value& v) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

}  // namespace rtm::gateway::json
