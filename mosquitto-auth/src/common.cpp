#include "common.hpp"

#include <ctime>

namespace rtm::plugin {

std::string loggable(const char* text) {
  if (text == nullptr) return "(none)";
  std::string out;
  for (std::size_t i = 0; text[i] != '\0'; ++i) {
    if (out.size() >= kMaxLoggedChars) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  return out;
}

std::int64_t now_s() { return static_cast<std::int64_t>(std::time(nullptr)); }

}  // namespace rtm::plugin
