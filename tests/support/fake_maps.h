// In-memory stand-ins for the data path's maps and for the clock, for control-logic tests.
#pragma once

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "controller.h"
#include "map_writer.h"

namespace ikelb::test {

class FakeClock : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override { return t; }
  std::chrono::system_clock::time_point t{std::chrono::seconds(1'700'000'000)};
};

// In-memory maps with an operation log ("table@<base>", "vs<id>@<base>", ...).
class FakeMaps : public MapWriter {
 public:
  explicit FakeMaps(uint32_t capacity = 4 * 65537) : slots(capacity, IKELB_NO_BACKEND) {}

  uint32_t table_capacity() const override { return static_cast<uint32_t>(slots.size()); }
  MapSnapshot snapshot() const override {
    MapSnapshot s;
    s.vs = vs;
    for (const auto& [id, m] : vs_meta)
      if (m.name[0]) s.vs_meta[id] = m;
    for (const auto& [id, b] : backends)
      if (b.state != IKELB_BACKEND_UNUSED) s.backends[id] = b;
    for (const auto& [id, m] : backend_meta)
      if (m.name[0]) s.backend_meta[id] = m;
    s.services = services;
    for (const auto& [a, v] : reverse) s.reverse.push_back(a);
    s.settings = settings;
    for (const auto& [id, r] : spi_routing)
      if (r.flags || r.ike_mask || r.esp_mask) s.spi_routing[id] = r;
    s.spi_labels = spi_labels;
    return s;
  }
  void set_service(const ServiceKey& k, uint32_t id) override { services[k] = id; }
  void delete_service(const ServiceKey& k) override {
    services.erase(k);
    ops.push_back("-service");
  }
  void set_virtual_server(uint32_t id, const ikelb_vs& v) override {
    vs[id] = v;
    ops.push_back("vs" + std::to_string(id) + "@" + std::to_string(v.table_base));
    check("vs" + std::to_string(id));
  }
  void delete_virtual_server(uint32_t id) override {
    vs.erase(id);
    ops.push_back("-vs" + std::to_string(id));
  }
  void write_table(uint32_t base, std::span<const uint32_t> t) override {
    std::copy(t.begin(), t.end(), slots.begin() + base);
    ops.push_back("table@" + std::to_string(base));
  }
  void set_backend(uint32_t id, const ikelb_backend& b) override {
    backends[id] = b;
    check("backend " + std::to_string(id));
  }
  void set_reverse(const IpAddress& a, const ikelb_reverse_value& v) override {
    reverse.erase(
        std::remove_if(reverse.begin(), reverse.end(), [&](auto& e) { return e.first == a; }),
        reverse.end());
    reverse.push_back({a, v});
  }
  void delete_reverse(const IpAddress& a) override {
    reverse.erase(
        std::remove_if(reverse.begin(), reverse.end(), [&](auto& e) { return e.first == a; }),
        reverse.end());
  }
  void set_settings(const ikelb_settings& s) override { settings = s; }
  void set_edge(const ikelb_edge_settings& e) override { edge = e; }
  void set_init_limit(uint32_t id, const ikelb_init_limit& l) override { init_limits[id] = l; }
  void set_vs_meta(uint32_t id, const ikelb_vs_meta& m) override { vs_meta[id] = m; }
  void set_backend_meta(uint32_t id, const ikelb_backend_meta& m) override { backend_meta[id] = m; }

  // SPI routing: the log shows "spi<vs>:flags=<f>", "label<vs>/<id>=<backend>" and
  // "-label<vs>/<id>" in order; spi_writes_while_on lists label writes done while their virtual
  // server's labels were on (the controller turns them off first).
  void set_spi_routing(uint32_t vs, const ikelb_spi_routing& r) override {
    spi_routing[vs] = r;
    ops.push_back("spi" + std::to_string(vs) + ":flags=" + std::to_string(r.flags));
  }
  void set_spi_label(uint32_t vs, uint32_t id, uint32_t backend) override {
    spi_labels[{vs, id}] = backend;
    ops.push_back("label" + std::to_string(vs) + "/" + std::to_string(id) + "=" +
                  std::to_string(backend));
    if (spi_routing.count(vs) && (spi_routing[vs].flags & IKELB_SPI_LABELS))
      spi_writes_while_on.push_back(ops.back());
  }
  void delete_spi_label(uint32_t vs, uint32_t id) override {
    spi_labels.erase({vs, id});
    ops.push_back("-label" + std::to_string(vs) + "/" + std::to_string(id));
    if (spi_routing.count(vs) && (spi_routing[vs].flags & IKELB_SPI_LABELS))
      spi_writes_while_on.push_back(ops.back());
  }
  // The log entries of spi_labels writes done while their virtual server had labels on.
  std::vector<std::string> spi_writes_while_on;
  std::map<uint32_t, ikelb_spi_routing> spi_routing;
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> spi_labels;

  // The active table of a virtual server, as the data path would read it.
  std::vector<uint32_t> table(uint32_t vs_id) const {
    const ikelb_vs& v = vs.at(vs_id);
    return {slots.begin() + v.table_base, slots.begin() + v.table_base + v.table_size};
  }
  uint8_t state(uint32_t id) const { return backends.at(id).state; }

  // With check_tables set: after every write of a backend or a virtual server, any backend an
  // active table names that is not active (the data path would have to probe past its slots).
  void check(const std::string& after) {
    if (!check_tables) return;
    for (const auto& [id, v] : vs) {
      std::set<uint32_t> named(slots.begin() + v.table_base,
                               slots.begin() + v.table_base + v.table_size);
      for (uint32_t b : named)
        if (b != IKELB_NO_BACKEND && backends.count(b) && backends[b].state != IKELB_BACKEND_ACTIVE)
          violations.push_back("after " + after + ": vs" + std::to_string(id) + "'s table names " +
                               std::to_string(b) + " in state " +
                               std::to_string(backends[b].state));
    }
  }
  bool check_tables = false;
  std::vector<std::string> violations;

  std::vector<uint32_t> slots;
  std::map<uint32_t, ikelb_vs> vs;
  std::map<uint32_t, ikelb_vs_meta> vs_meta;
  std::map<uint32_t, ikelb_backend> backends;
  std::map<uint32_t, ikelb_backend_meta> backend_meta;
  std::map<ServiceKey, uint32_t> services;
  std::vector<std::pair<IpAddress, ikelb_reverse_value>> reverse;
  ikelb_settings settings{};
  ikelb_edge_settings edge{};
  std::map<uint32_t, ikelb_init_limit> init_limits;
  std::vector<std::string> ops;
};

}  // namespace ikelb::test
