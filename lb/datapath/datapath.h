// RAII owner of the loaded XDP object (bpftool skeleton) with typed access to its maps, pinning
// and XDP attachment. Setup and map writes throw std::system_error carrying errno and what was
// being done.
//
// With a pin directory, every map is pinned there by name and a map already pinned there is
// adopted instead of created (its contents, the affinity table included, survive). XDP links are
// pinned as link_<ifname>: an existing one is adopted and its program replaced atomically when
// the object changed. Nothing is detached or unpinned when a Datapath is destroyed; only
// teardown() does that.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "address.h"
#include "ikelb_abi.h"
#include "map_writer.h"

struct ikelb_bpf;  // the skeleton (ikelb.skel.h)
struct bpf_link;

namespace ikelb {

std::string_view outcome_name(uint32_t outcome);  // metric label, "" if out of range
std::string_view event_name(uint32_t event);

class Datapath : public MapWriter {
 public:
  struct Options {
    uint32_t table_slots = IKELB_DEFAULT_TABLE_SLOTS;
    uint32_t affinity_entries = IKELB_DEFAULT_AFFINITY_ENTRIES;
    std::string pin_dir;  // "" = nothing pinned (tests)
  };

  Datapath() : Datapath(Options{}) {}
  explicit Datapath(const Options& options);  // opens and loads; needs CAP_BPF
  ~Datapath() override;
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  // Maps found pinned and adopted (empty when everything was created fresh).
  const std::vector<std::string>& adopted_maps() const { return adopted_; }
  // Notes for the log, e.g. a configured size that cannot apply to an adopted map.
  const std::vector<std::string>& notes() const { return notes_; }

  int prog_fd() const;
  uint32_t prog_id() const;                 // the kernel's id of the loaded program
  int map_fd(std::string_view name) const;  // IKELB_MAP_*; throws if unknown

  // Attaches the program to an interface (native XDP, or generic/skb mode), adopting a pinned
  // link if there is one. Returns what was done, for the log. Adds the port to tx_ports.
  std::string attach(const std::string& ifname, bool generic);
  // Detaches from an interface and removes its pinned link. Returns false if not attached.
  bool detach(const std::string& ifname);
  std::vector<std::string> attached() const;  // interface names
  // Why XDP is not forwarding on each of `ifnames` (empty: attached to all of them): no link,
  // a link left without its interface (deleted), or the name now on another interface.
  std::vector<std::string> link_problems(const std::vector<std::string>& ifnames) const;

  // Detaches every pinned link and removes every pin under `pin_dir`, then the directory.
  // Returns what was removed. Works without a loaded object.
  static std::vector<std::string> teardown(const std::string& pin_dir);
  // Makes sure `pin_dir` is on a bpf filesystem: if neither it nor its parent is, mounts one on
  // the parent (created if missing). Returns what was done, for the log. Needs CAP_SYS_ADMIN only
  // when it mounts (systemd's ExecStartPre=+, never the agent itself).
  static std::string mount_bpffs(const std::string& pin_dir);

  // MapWriter.
  uint32_t table_capacity() const override;
  MapSnapshot snapshot() const override;
  void set_service(const ServiceKey& key, uint32_t vs_id) override;
  void delete_service(const ServiceKey& key) override;
  void set_virtual_server(uint32_t vs_id, const ikelb_vs& vs) override;
  void delete_virtual_server(uint32_t vs_id) override;
  void write_table(uint32_t base, std::span<const uint32_t> slots) override;
  void set_backend(uint32_t id, const ikelb_backend& backend) override;
  void set_reverse(const IpAddress& backend, const ikelb_reverse_value& value) override;
  void delete_reverse(const IpAddress& backend) override;
  void set_settings(const ikelb_settings& settings) override;
  void set_edge(const ikelb_edge_settings& edge) override;
  void set_init_limit(uint32_t vs_id, const ikelb_init_limit& limit) override;
  void set_vs_meta(uint32_t vs_id, const ikelb_vs_meta& meta) override;
  void set_backend_meta(uint32_t id, const ikelb_backend_meta& meta) override;
  void set_spi_routing(uint32_t vs_id, const ikelb_spi_routing& routing) override;
  void set_spi_label(uint32_t vs_id, uint32_t id, uint32_t backend_id) override;
  void delete_spi_label(uint32_t vs_id, uint32_t id) override;
  // Publishes the VIP and reply records (ikelb_abi.h, struct ikelb_vip_record and
  // ikelb_reply_record) of the slots whose services or replies entries changed since the last
  // flush.
  void flush() override;

  // Convenience for tests: `port` in host order.
  void set_service(const IpAddress& vip, uint8_t proto, uint16_t port, uint32_t vs_id) {
    set_service(ServiceKey{vip, proto, port}, vs_id);
  }
  void add_tx_port(uint32_t ifindex);
  // Makes local_addrs exactly `addrs` (the host's own addresses). Returns the number changed.
  size_t set_local_addresses(const std::vector<IpAddress>& addrs);
  void set_affinity(uint32_t vs_id, const IpAddress& client, const ikelb_affinity_value& value);
  // Only if the client has no entry (the peer sync must not overwrite one the data path created
  // meanwhile): false if it has one.
  bool add_affinity(uint32_t vs_id, const IpAddress& client, const ikelb_affinity_value& value);

  // Reads; per-CPU counters are summed.
  std::array<uint64_t, IKELB_OUTCOME_MAX> outcomes() const;
  std::array<uint64_t, IKELB_EVENT_MAX> events() const;
  ikelb_traffic vs_traffic(uint32_t vs_id) const;
  ikelb_backend_stats backend_stats(uint32_t id) const;
  ikelb_vs_edge_stats vs_edge_stats(uint32_t vs_id) const;
  std::optional<ikelb_affinity_value> affinity(uint32_t vs_id, const IpAddress& client) const;
  std::optional<ikelb_backend> backend(uint32_t id) const;
  uint32_t affinity_capacity() const;
  // Entries in the learned SPI owner table (spi_owners), by a batched walk of the whole map.
  uint64_t spi_owner_entries() const;

  // One step of a walk over the affinity map: visits up to `max` entries after `cursor` (empty
  // to start) and returns false once the walk is complete. Never holds the map for long, so the
  // agent can interleave other work between steps.
  struct AffinityCursor {
    std::vector<uint8_t> token;
    bool started = false;
  };
  bool scan_affinity(AffinityCursor& cursor, uint32_t max,
                     const std::function<void(const ikelb_affinity_key&,
                                              const ikelb_affinity_value&)>& visit) const;
  // The same over the learned SPI owners (SPI routing), and the peer sync's insert there: only if
  // the SPI has no owner yet (false if it has one).
  bool scan_spi_owners(
      AffinityCursor& cursor, uint32_t max,
      const std::function<void(const ikelb_spi_owner_key&, const ikelb_spi_owner&)>& visit) const;
  bool add_spi_owner(const ikelb_spi_owner_key& key, const ikelb_spi_owner& owner);

 private:
  template <typename T>
  T sum_percpu(int fd, uint32_t key) const;
  // addr_filter (ikelb_abi.h): one more (`added`) or one fewer entry of `kind` (an
  // IKELB_ADDR_* bit) at `addr`. Called before an entry is written and after one is deleted, so
  // the filter the program reads never lacks a bit for an entry in the maps.
  void count_address(const ikelb_addr& addr, uint8_t family, uint8_t kind, bool added);
  // The same in memory only; true if the slot's kinds changed.
  bool tally_address(const ikelb_addr& addr, uint8_t family, uint8_t kind, bool added);
  void write_addr_filter();
  // replies (ikelb_abi.h, struct ikelb_reply): a backend's entry from its reverse value and the
  // services of its VIP; written to the map (and replies_); rewritten where a VIP's services
  // changed.
  ikelb_reply reply_of(const ikelb_reverse_value& rev, uint8_t family) const;
  void write_reply(const IpAddress& backend, const ikelb_reply& reply);
  void rewrite_replies(const IpAddress& vip);
  // vip_records: a slot's record as services_ has it, if the slot gets one (exactly one VIP, with
  // at most IKELB_VIP_RECORD_SERVICES services).
  std::optional<ikelb_vip_record> vip_record_of(uint32_t slot) const;
  // reply_records: the same for the one backend in a slot.
  std::optional<ikelb_reply_record> reply_record_of(uint32_t slot) const;
  // Before the services of `vip` change in vips (or `backend`'s entry in replies): its slot's
  // record is no longer read (its `bit`, IKELB_ADDR_RECORD or IKELB_ADDR_REPLY_RECORD, cleared)
  // and waits for the next flush, in `slots`.
  void unpublish(const IpAddress& addr, uint8_t bit, std::set<uint32_t>& slots);
  // Returns once every program that was running when it was called has finished: an update of a
  // map-in-map makes the kernel wait for an RCU grace period (maybe_wait_bpf_programs).
  void grace_period();
  // The derived state from what vips, reverse and local_addrs hold (adopted pins): the filter
  // and its counts, services_, replies_ and the replies map.
  void derive_from_adopted_maps();

  struct SkelDeleter {
    void operator()(::ikelb_bpf* s) const;
  };
  std::unique_ptr<::ikelb_bpf, SkelDeleter> skel_;
  unsigned ncpus_ = 0;
  std::string pin_dir_;
  std::vector<std::string> adopted_, notes_;
  ikelb_addr_filter addr_filter_{};  // what the program's addr_filter holds
  // Entries in vips, reverse, local_addrs per filter slot (by kind: VIP, backend, local).
  std::vector<std::array<uint32_t, 3>> addr_counts_ =
      std::vector<std::array<uint32_t, 3>>(IKELB_ADDR_FILTER_SLOTS);
  std::map<ServiceKey, uint32_t> services_;   // what vips holds (-> vs_id)
  std::set<uint32_t> unpublished_vips_;       // filter slots whose VIP record waits for a flush
  std::set<uint32_t> unpublished_replies_;    // and whose reply record does
  int grace_outer_ = -1, grace_inner_ = -1;   // grace_period()'s map-in-map and its inner map
  std::map<IpAddress, ikelb_reply> replies_;  // what replies holds (one per reverse)
  std::map<std::string, int> link_fds_;       // ifname -> link fd (owned)
};

}  // namespace ikelb
