// Config sections for running several ikelb nodes for one VIP (docs/high-availability.md). Kept
// apart from config.h so that the high-availability keys read as one piece.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ikelb {

// "announce": ikelbd enables a bird2 protocol (the VIP's route) while this node can serve the
// virtual server, and disables it otherwise.
struct AnnounceVirtualServer {
  std::string name;      // a virtual server of the config
  std::string protocol;  // the bird protocol carrying its route (e.g. a `protocol static`)
  uint32_t min_healthy_backends = 1;
};

struct AnnounceConfig {
  std::string bird_socket = "/run/bird/bird.ctl";          // bird's control socket
  uint32_t interval_ms = 1000;                             // reconcile period with bird
  std::string drain_file = "/var/lib/ikelb/node-drained";  // exists while the node is drained
  std::vector<AnnounceVirtualServer> virtual_servers;
};

// "sync": peer sync of affinity entries between the nodes (lb/ha/sync.h). Every node streams the
// entries it creates or refreshes to every peer over UDP, authenticated with a shared key.
struct SyncConfig {
  uint32_t node_id = 0;            // unique among the nodes, not 0
  std::string listen;              // "addr:port" this node receives on (and sends from)
  std::vector<std::string> peers;  // "addr:port" of every other node (at most 64)
  std::string key_file;            // the shared key (at least 32 bytes), read at start and reload
  uint32_t interval_ms = 1000;     // how often new and refreshed entries are sent
  uint32_t max_records_per_second = 50000;  // records sent per second, over all peers
  uint32_t queue_records = 100000;      // records waiting to be sent; the oldest are dropped beyond
  bool snapshot_on_join = true;         // a node starting with an empty table asks for a snapshot
  uint32_t snapshot_timeout_ms = 3000;  // how long the announcement waits for that snapshot
};

inline constexpr size_t kSyncMaxPeers = 64;
inline constexpr size_t kSyncMinKeyBytes = 32;

}  // namespace ikelb
