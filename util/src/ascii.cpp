#include "rtm/util/ascii.hpp"

namespace rtm::util {

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  ascii_lower_in_place(out);
  return out;
}

void ascii_lower_in_place(std::string& text) {
  for (char& c : text) c = ascii_lower(c);
}

}  // namespace rtm::util
