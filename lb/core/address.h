// IP addresses in the form the data path stores them (ikelb_addr + family byte).
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ikelb_abi.h"

namespace ikelb {

struct IpAddress {
  uint8_t family = 0;  // IKELB_AF_INET or IKELB_AF_INET6
  ikelb_addr addr{};

  // Accepts dotted IPv4 or RFC 4291 IPv6 text; nullopt for anything else.
  static std::optional<IpAddress> parse(std::string_view text);
  // Throws std::invalid_argument; for literals in tests and tools.
  static IpAddress must_parse(std::string_view text);

  std::string str() const;
  bool operator==(const IpAddress&) const;
  std::strong_ordering operator<=>(const IpAddress&) const;  // family, then the address words
};

// The Maglev slot index the data path computes for `client` (ikelb_client_hash).
uint32_t client_hash(const IpAddress& client);

}  // namespace ikelb
