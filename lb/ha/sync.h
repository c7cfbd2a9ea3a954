// Peer sync of affinity entries between ikelb nodes: the sender, the receiver and the snapshot
// for a joining node (docs/high-availability.md, "Affinity sync"). Pure logic behind three small
// interfaces (clock, datagram sender, affinity store), unit-tested with fakes; the agent wires it
// to a UDP socket (sync_socket.h) and the pinned affinity map (sync_datapath.h).
//
// Records: affinity entries and learned SPI owners (SPI routing). The latter are inserted only
// where the SPI has no owner yet; otherwise they follow the same path.
//
// Sender: every round (sync.interval_ms) walks the affinity map for entries created or refreshed
// since the previous walk, queues them by name (ids are node-local), and sends the queue, at most
// max_records_per_second, in datagrams to every peer. The queue is bounded: when full, the oldest
// record is dropped and counted. A dead peer costs nothing: UDP, and no per-peer state but the
// replay window (one per configured peer id seen).
//
// Receiver, in this order, each refusal counted by reason: the source must be a configured peer
// (address and port), the MAC must verify, the sender must not be this node's id, the sequence
// must be fresh (replay window). Then each record goes through sync_merge: a fresher local entry
// is kept, an unknown virtual server or backend and a backend that takes no traffic here are
// ignored (counted), otherwise the entry is written with the peer's last-seen time.
//
// An entry written from a peer is stored as last seen no later than the start of the latest walk,
// so the next walk does not send it back (it looks at most one interval older; harmless against
// idle timeouts of minutes). A node's sequence numbers start at its start time in microseconds,
// so a restarted node is not taken for a replay by its peers.
//
// Snapshot: a node that starts with an empty affinity table (and snapshot_on_join) asks every
// peer for its whole table, once per round until one answers "snapshot end" or
// snapshot_timeout_ms passed; meanwhile holding() is true and the announcer does not announce. A
// peer answers with its live entries at the same rate cap as the rest, then "snapshot end". A
// node still waiting for its own snapshot answers nobody (its table is not the cluster's).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "address.h"
#include "sync_codec.h"

namespace ikelb {

struct SyncEndpoint {
  IpAddress address;
  uint16_t port = 0;
  std::string str() const;
  friend bool operator==(const SyncEndpoint&, const SyncEndpoint&) = default;
};

class SyncClock {
 public:
  virtual ~SyncClock() = default;
  virtual uint64_t unix_ms() const = 0;  // sent times, checked by the peers' replay windows
  virtual uint64_t mono_ns() const = 0;  // the data path's clock (CLOCK_MONOTONIC)
};

class SyncSender {
 public:
  virtual ~SyncSender() = default;
  // False when the datagram could not be sent (counted; never retried: the next round resends
  // whatever is refreshed).
  virtual bool send(const SyncEndpoint& to, std::span<const uint8_t> datagram) = 0;
};

// One affinity entry in this node's ids.
struct SyncEntry {
  uint32_t vs_id = 0, backend_id = 0;
  IpAddress client;
  uint64_t last_seen_ns = 0;  // mono_ns()
  uint32_t flags = 0;         // IKELB_AFFINITY_*, kept when a peer refreshes the same backend
};

// One learned SPI owner (SPI routing) in this node's ids.
struct SyncSpiEntry {
  uint32_t vs_id = 0, backend_id = 0;
  uint8_t kind = 0;  // IKELB_SPI_IKE or IKELB_SPI_ESP
  uint64_t spi = 0;
  uint64_t last_seen_ns = 0;
};

struct SyncTarget {
  uint32_t vs_id = 0, backend_id = 0;
  bool serving = false;  // takes traffic here (active or draining)
};

class SyncStore {
 public:
  struct Cursor {
    std::vector<uint8_t> token;
    bool started = false;
  };
  virtual ~SyncStore() = default;
  // Visits up to `max` entries after `cursor`; false once the walk is complete.
  virtual bool walk(Cursor& cursor, uint32_t max,
                    const std::function<void(const SyncEntry&)>& visit) = 0;
  virtual std::optional<SyncEntry> find(uint32_t vs_id, const IpAddress& client) = 0;
  // Writes the entry; with `only_if_absent`, returns false if one exists (created meanwhile).
  virtual bool write(const SyncEntry& entry, bool only_if_absent) = 0;
  // (virtual server name, backend name) of local ids, nullopt if unknown.
  virtual std::optional<std::pair<std::string, std::string>> names(uint32_t vs_id,
                                                                   uint32_t backend_id) = 0;
  // Local ids of names, nullopt if the virtual server or backend is unknown here.
  virtual std::optional<SyncTarget> target(const std::string& vs, const std::string& backend) = 0;
  // Learned SPI owners: the same walk, and an insert only where the SPI has no owner yet (false
  // if it has one: the data path never lets traffic overwrite a known owner, nor does the sync).
  virtual bool walk_spi(Cursor& cursor, uint32_t max,
                        const std::function<void(const SyncSpiEntry&)>& visit) = 0;
  virtual bool add_spi(const SyncSpiEntry& entry) = 0;
};

struct SyncSettings {
  uint32_t node_id = 0;
  std::vector<SyncEndpoint> peers;
  std::vector<uint8_t> key;
  uint32_t interval_ms = 1000;
  uint32_t max_records_per_second = 50000;
  uint32_t queue_records = 100000;
  bool snapshot_on_join = true;
  uint32_t snapshot_timeout_ms = 3000;
  uint64_t idle_ns = 0;  // entries idle longer are not sent (0: no idle timeout)
  uint32_t walk_batch = 4096;
};

enum class SyncSnapshot { kNotNeeded, kWaiting, kReceived, kTimedOut };
std::string_view to_string(SyncSnapshot s);  // not_needed, waiting, received, timed_out

struct SyncStats {
  uint64_t records_sent = 0;      // records put into datagrams (once, whatever the peer count)
  uint64_t records_received = 0;  // records in accepted datagrams
  uint64_t merged = 0;            // written into the affinity map
  uint64_t kept_local = 0;        // the local entry was as fresh or fresher (or, for an SPI, known)
  uint64_t spi_merged = 0;        // learned SPI owners written (included in records_*)
  // Records not sent or not merged, by reason: queue_full, unknown_target, not_serving,
  // unnamed (a local entry whose ids have no names any more), store_error.
  std::map<std::string, uint64_t> dropped;
  // Datagrams refused, by reason: unknown_peer, bad_mac, malformed, own_node, replay.
  std::map<std::string, uint64_t> refused;
  uint64_t datagrams_sent = 0, datagrams_received = 0, send_errors = 0;
  uint64_t snapshots_served = 0;
  size_t queue_depth = 0;
  SyncSnapshot snapshot = SyncSnapshot::kNotNeeded;
  uint64_t snapshot_records = 0;        // records received while waiting for the snapshot
  std::optional<uint64_t> snapshot_ms;  // from start until the snapshot ended
};

class SyncNode {
 public:
  SyncNode(SyncSettings settings, SyncClock& clock, SyncSender& sender, SyncStore& store);

  // Once at start: asks the peers for a snapshot when the table is empty and configured to.
  void start();
  // A new config (same listen address). Shrinks the queue if needed.
  void configure(SyncSettings settings);

  // Every interval: refills the rate budget, resends a pending snapshot request, starts a walk.
  void begin_round();
  // A bounded piece of the round's work (a walk batch, sending, serving snapshots). True while
  // more of it can be done now: call again (after other work of the loop).
  bool step();

  void receive(const SyncEndpoint& from, std::span<const uint8_t> datagram);

  // True while waiting for the snapshot: this node must not announce yet.
  bool holding();
  const SyncStats& stats() const { return stats_; }
  const SyncSettings& settings() const { return settings_; }

  // Called once when the wait for the snapshot ends (received or timed out).
  std::function<void()> on_snapshot_done;

 private:
  struct Queued {
    std::variant<SyncAffinity, SyncSpiOwner> record;
    uint64_t last_seen_ns = 0;
  };
  struct Serving {
    SyncEndpoint to;
    SyncStore::Cursor cursor;
    bool spi = false;  // walking the SPI owners (after the affinity entries)
  };
  uint64_t next_seq(size_t datagrams);
  void send_records(std::vector<Queued> batch, const std::vector<SyncEndpoint>& to);
  void send_control(uint8_t type, const std::vector<SyncEndpoint>& to);
  // The names of local ids (counted as dropped "unnamed" when they have none any more).
  std::optional<std::pair<std::string, std::string>> names_of(uint32_t vs_id, uint32_t backend_id);
  std::optional<Queued> named(const SyncEntry& e);
  std::optional<Queued> named(const SyncSpiEntry& e);
  // One walk step over the affinity entries or, with `spi`, the SPI owners.
  bool walk(SyncStore::Cursor& cursor, bool spi, uint32_t max,
            const std::function<void(Queued)>& visit, uint64_t after_ns);
  bool live(uint64_t last_seen_ns, uint64_t now_ns) const;
  void enqueue(Queued q);
  void merge(const SyncAffinity& r, uint64_t now_ns);
  void merge(const SyncSpiOwner& r, uint64_t now_ns);
  void refuse(const std::string& reason, const SyncEndpoint& from, const std::string& detail);
  void snapshot_done(SyncSnapshot how);
  bool serve_snapshots();

  SyncSettings settings_;
  SyncClock& clock_;
  SyncSender& sender_;
  SyncStore& store_;
  SyncStats stats_;
  SyncReplayWindow replay_;
  std::deque<Queued> queue_;
  std::vector<Serving> serving_;  // at most one per configured peer
  SyncStore::Cursor cursor_;
  bool walking_ = false, walking_spi_ = false;
  uint64_t threshold_ns_ = 0;  // the walk sends entries last seen after this
  uint64_t mark_ns_ = 0;       // start of the latest walk: the next walk's threshold
  double tokens_ = 0;          // records that may be sent now
  uint64_t refilled_ns_ = 0;
  uint64_t seq_ = 0;
  uint64_t started_ns_ = 0, deadline_ns_ = 0, requested_ns_ = 0;
};

}  // namespace ikelb
