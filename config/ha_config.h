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

}  // namespace ikelb
