#include "address.h"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

namespace ikelb {

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  std::string s(text);
  IpAddress a;
  if (inet_pton(AF_INET, s.c_str(), &a.addr.u32[0]) == 1) {
    a.family = IKELB_AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.addr.u32) == 1) {
    a.family = IKELB_AF_INET6;
    return a;
  }
  return std::nullopt;
}

IpAddress IpAddress::must_parse(std::string_view text) {
  auto a = parse(text);
  if (!a) throw std::invalid_argument("not an IP address: " + std::string(text));
  return *a;
}

std::string IpAddress::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(family == IKELB_AF_INET ? AF_INET : AF_INET6, addr.u32, buf, sizeof(buf));
  return buf;
}

bool IpAddress::operator==(const IpAddress& o) const {
  return family == o.family && std::memcmp(&addr, &o.addr, sizeof(addr)) == 0;
}

std::strong_ordering IpAddress::operator<=>(const IpAddress& o) const {
  if (auto c = family <=> o.family; c != 0) return c;
  for (int i = 0; i < 4; i++)
    if (auto c = addr.u32[i] <=> o.addr.u32[i]; c != 0) return c;
  return std::strong_ordering::equal;
}

uint32_t client_hash(const IpAddress& client) {
  return ikelb_client_hash(&client.addr, client.family);
}

}  // namespace ikelb
