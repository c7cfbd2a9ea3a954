// Peer sync between ikelb nodes (docs/high-availability.md): the wire format, its
// authentication, replay protection and the rule for merging a peer's affinity entry. Pure
// functions, unit-tested; the agent's sender and receiver are in sync.h.
//
// Why: after the backend set changed, a client pinned on node A to its old gateway would be
// placed by the new table on node B if it lands there (a node failure reshuffles the router's
// ECMP buckets). Each node streams the affinity entries it creates or refreshes to its peers, in
// the spirit of the IPVS sync daemon, and inserts what it receives unless its own entry is
// fresher.
//
// Wire format v1, one UDP datagram, integers big-endian:
//   header (32 bytes): magic "IKSY", version (1), message type, flags (0), sender node id (u32),
//     sequence (u64, per sender, +1 per datagram), sent (u64, Unix ms), record count (u16),
//     reserved (u16, 0)
//   records, each: type (u8), body length (u16), body. A receiver skips (and counts) record
//     types it does not know, so new types (e.g. learned SPI owners) can ride along later.
//     Type 1, affinity: family (u8: 4 or 6), client address (16 bytes, IPv4 in the first 4),
//     age (u32, ms since the entry was last seen on the sender: no clock sync needed), virtual
//     server name (u8 length + bytes), backend name (u8 length + bytes). Names, not ids: ids
//     are node-local.
//     Type 2, learned SPI owner (SPI routing): kind (u8: 1 IKE, 2 ESP, as enum ikelb_spi_kind),
//     SPI (u64: the gateway's IKE SPI as its 8 wire bytes, or an ESP SPI in the low 4), age
//     (u32, ms), virtual server name, backend name (as in type 1).
//   trailer: HMAC-SHA256 (OpenSSL) over everything before it, with the shared key; a forged
//     entry would redirect a client, so nothing unauthenticated is ever parsed past the header.
// Message types: 1 records, 2 snapshot request (no records: "send me your whole table"), 3
// snapshot end (no records: "that was my whole table", sent to the requester after the records).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "address.h"

namespace ikelb {

inline constexpr uint8_t kSyncVersion = 1;
inline constexpr uint8_t kSyncRecords = 1;
inline constexpr uint8_t kSyncSnapshotRequest = 2;
inline constexpr uint8_t kSyncSnapshotEnd = 3;
inline constexpr uint8_t kSyncRecordAffinity = 1;
inline constexpr uint8_t kSyncRecordSpiOwner = 2;
inline constexpr size_t kSyncHeaderBytes = 32;
inline constexpr size_t kSyncMacBytes = 32;
inline constexpr size_t kSyncMaxDatagram = 1400;  // below any path MTU between the nodes

struct SyncAffinity {
  std::string vs, backend;
  IpAddress client;
  uint32_t age_ms = 0;
  friend bool operator==(const SyncAffinity&, const SyncAffinity&) = default;
};

struct SyncSpiOwner {
  std::string vs, backend;
  uint8_t kind = 0;  // IKELB_SPI_IKE or IKELB_SPI_ESP
  uint64_t spi = 0;
  uint32_t age_ms = 0;
  friend bool operator==(const SyncSpiOwner&, const SyncSpiOwner&) = default;
};

struct SyncHeader {
  uint8_t type = kSyncRecords;
  uint32_t sender = 0;
  uint64_t seq = 0;
  uint64_t sent_ms = 0;
};

struct SyncMessage {
  SyncHeader header;
  std::vector<SyncAffinity> affinity;
  std::vector<SyncSpiOwner> spi_owners;
  size_t unknown_records = 0;  // skipped record types
};

// Datagrams of at most `max_bytes` each carrying the records in order; the first gets
// header.seq, the next seq + 1, ... A snapshot request or end is one datagram without records.
// Throws std::invalid_argument for a record that cannot be encoded (a name over 255 bytes).
std::vector<std::vector<uint8_t>> encode_sync(const SyncHeader& header,
                                              const std::vector<SyncAffinity>& records,
                                              std::span<const uint8_t> key,
                                              size_t max_bytes = kSyncMaxDatagram);
// The same with learned SPI owners after the affinity records (a kind other than IKE or ESP
// throws std::invalid_argument too).
std::vector<std::vector<uint8_t>> encode_sync(const SyncHeader& header,
                                              const std::vector<SyncAffinity>& records,
                                              const std::vector<SyncSpiOwner>& spi_owners,
                                              std::span<const uint8_t> key,
                                              size_t max_bytes = kSyncMaxDatagram);

// The message, or why it was refused ("bad MAC", "truncated record", ...). Never throws.
std::variant<SyncMessage, std::string> decode_sync(std::span<const uint8_t> datagram,
                                                   std::span<const uint8_t> key);

// Replay protection per sender: a sequence number is accepted once, within a window of the 64
// highest seen, and only if its send time is within `skew_ms` of the receiver's clock (which
// also bounds what a restarted receiver, with an empty window, can be fed again).
class SyncReplayWindow {
 public:
  explicit SyncReplayWindow(uint64_t skew_ms = 30000) : skew_ms_(skew_ms) {}
  // "" if fresh (and now remembered), else why not.
  std::string accept(const SyncHeader& h, uint64_t now_ms);

 private:
  struct Peer {
    uint64_t highest = 0;
    uint64_t seen = 0;  // bit i: highest - i was seen
  };
  uint64_t skew_ms_;
  std::map<uint32_t, Peer> peers_;
};

enum class SyncMerge {
  kInsert,         // no local entry, or an older one: take the peer's
  kKeepLocal,      // the local entry is as fresh or fresher
  kUnknownTarget,  // no such virtual server or backend here
  kNotServing,     // the backend takes no traffic here (down, disabled)
};

// The merge rule. `local_age_ms`: age of this node's entry for the client, if any.
// `target_serving`: the named backend exists here and takes traffic (active or draining);
// nullopt if the virtual server or backend is unknown here.
SyncMerge sync_merge(std::optional<uint32_t> local_age_ms, uint32_t remote_age_ms,
                     std::optional<bool> target_serving);

}  // namespace ikelb
