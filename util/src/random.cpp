#include "rtm/util/random.hpp"

#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>

namespace rtm::util {

std::string random_hex(std::size_t n) {
  static std::mutex mutex;
  static std::mt19937_64 rng = [] {
    std::random_device rd;
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    return std::mt19937_64((static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
                           static_cast<std::uint64_t>(now));
  }();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(n, '0');
  std::lock_guard<std::mutex> lock(mutex);
  for (auto& c : out) c = kHex[rng() & 15];
  return out;
}

}  // namespace rtm::util
