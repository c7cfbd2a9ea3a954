// RAII owner of the loaded XDP object (bpftool skeleton) with typed access to its maps. Setup and
// map writes throw std::system_error carrying errno and what was being done.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "address.h"
#include "ikelb_abi.h"

struct ikelb_bpf;  // the skeleton (ikelb.skel.h)

namespace ikelb {

std::string_view outcome_name(uint32_t outcome);  // metric label, "" if out of range
std::string_view event_name(uint32_t event);

class Datapath {
 public:
  struct Options {
    uint32_t table_slots = IKELB_DEFAULT_TABLE_SLOTS;
    uint32_t affinity_entries = IKELB_DEFAULT_AFFINITY_ENTRIES;
  };

  Datapath() : Datapath(Options{}) {}
  explicit Datapath(const Options& options);  // opens and loads; needs CAP_BPF
  ~Datapath();
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  int prog_fd() const;
  int map_fd(std::string_view name) const;  // IKELB_MAP_*; throws if unknown

  // Control-plane writes. `port` is in host order; 0 is the protocol-wide entry (see ABI).
  void set_service(const IpAddress& vip, uint8_t proto, uint16_t port, uint32_t vs_id);
  void set_virtual_server(uint32_t vs_id, const ikelb_vs& vs);
  void write_table(uint32_t base, std::span<const uint32_t> slots);
  void set_backend(uint32_t id, const ikelb_backend& backend);
  void set_reverse(const IpAddress& backend, const ikelb_reverse_value& value);
  void add_tx_port(uint32_t ifindex);
  void set_settings(const ikelb_settings& settings);
  void set_affinity(uint32_t vs_id, const IpAddress& client, const ikelb_affinity_value& value);

  // Reads; per-CPU counters are summed.
  std::array<uint64_t, IKELB_OUTCOME_MAX> outcomes() const;
  std::array<uint64_t, IKELB_EVENT_MAX> events() const;
  ikelb_traffic vs_traffic(uint32_t vs_id) const;
  ikelb_backend_stats backend_stats(uint32_t id) const;
  std::optional<ikelb_affinity_value> affinity(uint32_t vs_id, const IpAddress& client) const;
  std::optional<ikelb_backend> backend(uint32_t id) const;

 private:
  template <typename T>
  T sum_percpu(int fd, uint32_t key) const;

  struct SkelDeleter {
    void operator()(::ikelb_bpf* s) const;
  };
  std::unique_ptr<::ikelb_bpf, SkelDeleter> skel_;
  unsigned ncpus_ = 0;
};

}  // namespace ikelb
