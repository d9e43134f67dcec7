#pragma once
// Walks an MQTT topic (name or filter) level by level without allocating. An empty text
// is one empty level; "a/" is the levels "a" and "". Pure, no I/O.
#include <cstddef>
#include <string_view>

namespace rtm::topics {

class LevelCursor {
 public:
  explicit LevelCursor(std::string_view text) : text_(text) {}
  bool done() const { return done_; }
  std::string_view next() {
    const std::size_t slash = text_.find('/', position_);
    if (slash == std::string_view::npos) {
      done_ = true;
      return text_.substr(position_);
    }
    const std::string_view level = text_.substr(position_, slash - position_);
    position_ = slash + 1;
    return level;
  }

 private:
  std::string_view text_;
  std::size_t position_ = 0;
  bool done_ = false;
};

}  // namespace rtm::topics
