// The async side of health checking: one ProbeSession per gateway on the agent's io_context,
// each with a connected UDP socket (so the kernel filters answers by source and reports ICMP
// errors) and one timer. Health changes are handed to a callback on the loop.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "address.h"
#include "session.h"

namespace ikelb {

struct ProbeTarget {
  uint32_t id = 0;  // backend id
  IpAddress address;
  uint16_t port = 500;
  std::optional<IpAddress> source;  // bind the probe socket to this address
  ike::SessionSettings settings;
  bool initially_healthy = true;

  bool same_probe(const ProbeTarget& o) const;  // everything but initially_healthy
};

class Prober {
 public:
  using OnChange = std::function<void(uint32_t id, bool healthy, const std::string& cause)>;

  Prober(boost::asio::io_context& io, OnChange on_change);
  ~Prober();

  // Replaces the set of gateways probed. A gateway probed the same way as before keeps its
  // session (counters, learned group); others start fresh. Socket errors (a source address that
  // does not exist, ...) are reported through the returned messages and the gateway is marked
  // down with that cause.
  std::vector<std::string> set_targets(const std::vector<ProbeTarget>& targets);
  std::optional<ike::SessionStatus> status(uint32_t id) const;
  size_t size() const { return sessions_.size(); }

 private:
  struct Entry;
  boost::asio::io_context& io_;
  OnChange on_change_;
  std::map<uint32_t, std::shared_ptr<Entry>> sessions_;
};

// Random bytes from the kernel (getrandom), for SPIs, nonces and KE values.
void kernel_random(std::span<uint8_t> out);

}  // namespace ikelb
