#pragma once
// Random identifiers: instance ids, client ids, msg_id prefixes, temporary names. Not for
// secrets (the generator is not cryptographic).
#include <cstddef>
#include <string>

namespace rtm::util {

// `n` lower-case hex digits from a generator seeded once per process; thread-safe.
std::string random_hex(std::size_t n);

}  // namespace rtm::util
