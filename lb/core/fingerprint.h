// A virtual server's table fingerprint: one number that is equal on two ikelb nodes exactly when
// they send every client of that virtual server to the same gateway (same table, same members,
// same addresses). `ikelbctl status` shows it and ikelb_virtual_server_table_fingerprint exports
// it, so that an alert sees nodes that disagree (a config rolled out to some nodes only, a
// backend down on one node's probes but not another's).
//
// Node-local details are left out on purpose: backend ids (assigned in the order a node saw its
// configs) are replaced by each member's canonical index (position in name order), so two nodes
// with different reload histories but the same inputs agree.
//
// fingerprint v1 = the first 8 bytes (big-endian) of SHA-256 over:
//   "ikelb table fingerprint v1\n" "maglev v1\n", the table size (4 bytes LE), the member count
//   (4 bytes LE), then per member in name order: name, NUL, address text, NUL, weight (4 bytes
//   LE); then every slot as the canonical index of its backend (4 bytes LE, 0xFFFFFFFF for an
//   empty slot).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ikelb {

struct FingerprintMember {
  std::string name;
  std::string address;  // as text (IpAddress::str())
  uint32_t weight = 0;
  uint32_t id = 0;  // the id the table's slots hold
};

// Throws std::invalid_argument if a slot names an id that is not a member's.
uint64_t table_fingerprint(uint32_t table_size, std::vector<FingerprintMember> members,
                           std::span<const uint32_t> table);

// 16 lowercase hex digits.
std::string fingerprint_hex(uint64_t fingerprint);

// The fingerprint as a Prometheus sample value: its top 48 bits, exact in a double.
double fingerprint_metric_value(uint64_t fingerprint);

}  // namespace ikelb
