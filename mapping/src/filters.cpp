// Relations between MQTT topic filters, used for the loop check and for subscriptions.
#include "pattern.hpp"
#include "rtm/mapping/rules.hpp"
#include "rtm/topics/levels.hpp"

namespace rtm::mapping {

using topics::LevelCursor;

// MQTT's '$' rule is left out on purpose: for the loop check a false "overlap" only refuses
// a doubtful rule set, while a missed one would let a loop through.
bool filters_overlap(std::string_view a, std::string_view b) {
  LevelCursor a_levels(a);
  LevelCursor b_levels(b);
  while (true) {
    if (a_levels.done() || b_levels.done()) {
      if (a_levels.done() && b_levels.done()) return true;
      // One filter has levels left: they overlap only if exactly "#" is left ("a/#"
      // matches "a").
      LevelCursor& rest = a_levels.done() ? b_levels : a_levels;
      return rest.next() == "#" && rest.done();
    }
    const std::string_view level_a = a_levels.next();
    const std::string_view level_b = b_levels.next();
    if (level_a == "#" || level_b == "#") return true;
    if (level_a != "+" && level_b != "+" && level_a != level_b) return false;
  }
}

namespace detail {

bool filter_covers(std::string_view wide, std::string_view narrow) {
  if (!narrow.empty() && narrow.front() == '$' && !wide.empty() &&
      (wide.front() == '+' || wide.front() == '#')) {
    return false;
  }
  LevelCursor wide_levels(wide);
  LevelCursor narrow_levels(narrow);
  while (!wide_levels.done()) {
    const std::string_view wanted = wide_levels.next();
    if (wanted == "#") return true;
    if (narrow_levels.done()) return false;
    const std::string_view level = narrow_levels.next();
    if (level == "#") return false;  // only "#" covers "#"
    if (wanted != "+" && wanted != level) return false;
  }
  return narrow_levels.done();
}

}  // namespace detail
}  // namespace rtm::mapping
