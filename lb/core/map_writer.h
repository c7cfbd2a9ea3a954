// What the control logic writes into and reads back from the data path's maps. Datapath
// implements it over the real maps; tests use an in-memory fake. Writes throw std::system_error.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <utility>
#include <vector>

#include "address.h"
#include "ikelb_abi.h"

namespace ikelb {

struct ServiceKey {
  IpAddress vip;
  uint8_t proto = 0;
  uint16_t port = 0;  // host order; 0 = protocol-wide entry (ESP, non-first fragments)
  auto operator<=>(const ServiceKey& o) const {
    if (auto c = vip <=> o.vip; c != 0) return c;
    if (auto c = proto <=> o.proto; c != 0) return c;
    return port <=> o.port;
  }
  bool operator==(const ServiceKey& o) const { return (*this <=> o) == 0; }
};

// Everything the agent needs to adopt pinned state: what is in the maps now.
struct MapSnapshot {
  std::map<uint32_t, ikelb_vs> vs;
  std::map<uint32_t, ikelb_vs_meta> vs_meta;            // non-empty names only
  std::map<uint32_t, ikelb_backend> backends;           // state != UNUSED only
  std::map<uint32_t, ikelb_backend_meta> backend_meta;  // non-empty names only
  std::map<ServiceKey, uint32_t> services;              // -> vs_id
  std::vector<IpAddress> reverse;                       // backend addresses with an entry
  ikelb_settings settings{};
  // SPI routing (issue 15): non-zero spi_routing entries, and every spi_labels entry.
  std::map<uint32_t, ikelb_spi_routing> spi_routing;
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> spi_labels;  // (vs_id, id) -> backend id
};

class MapWriter {
 public:
  virtual ~MapWriter() = default;

  virtual uint32_t table_capacity() const = 0;  // slots in the maglev map
  virtual MapSnapshot snapshot() const = 0;

  virtual void set_service(const ServiceKey& key, uint32_t vs_id) = 0;
  virtual void delete_service(const ServiceKey& key) = 0;
  virtual void set_virtual_server(uint32_t vs_id, const ikelb_vs& vs) = 0;
  virtual void delete_virtual_server(uint32_t vs_id) = 0;
  virtual void write_table(uint32_t base, std::span<const uint32_t> slots) = 0;
  virtual void set_backend(uint32_t id, const ikelb_backend& backend) = 0;  // zero = free
  virtual void set_reverse(const IpAddress& backend, const ikelb_reverse_value& value) = 0;
  virtual void delete_reverse(const IpAddress& backend) = 0;
  virtual void set_settings(const ikelb_settings& settings) = 0;
  virtual void set_edge(const ikelb_edge_settings& edge) = 0;
  virtual void set_init_limit(uint32_t vs_id, const ikelb_init_limit& limit) = 0;  // zero = none
  virtual void set_vs_meta(uint32_t vs_id, const ikelb_vs_meta& meta) = 0;         // zero = free
  virtual void set_backend_meta(uint32_t id, const ikelb_backend_meta& meta) = 0;

  // SPI routing (issue 15): a virtual server's layout and flags (zero = off), and its gateway
  // ids (spi_labels: (vs_id, id) -> backend id).
  virtual void set_spi_routing(uint32_t vs_id, const ikelb_spi_routing& routing) = 0;
  virtual void set_spi_label(uint32_t vs_id, uint32_t id, uint32_t backend_id) = 0;
  virtual void delete_spi_label(uint32_t vs_id, uint32_t id) = 0;

  // The end of a batch of writes. Derived state that costs a wait to write (the VIP and reply
  // records: two RCU grace periods) is written now; until then the data path answers from the maps
  // above, only more slowly.
  virtual void flush() {}
};

}  // namespace ikelb
