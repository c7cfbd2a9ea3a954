// The peer sync's view of this node (sync.h's SyncStore and SyncClock): the pinned affinity map
// of the data path, and the controller's names of virtual servers and backends. The name tables
// are reloaded from the controller at most every 100 ms (cheap, and a backend's state change is
// seen within that).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "controller.h"
#include "datapath.h"
#include "sync.h"

namespace ikelb {

class SystemSyncClock : public SyncClock {
 public:
  uint64_t unix_ms() const override;
  uint64_t mono_ns() const override;
};

class DatapathSyncStore : public SyncStore {
 public:
  DatapathSyncStore(Datapath& datapath, const Controller& controller, const SyncClock& clock)
      : datapath_(datapath), controller_(controller), clock_(clock) {}

  bool walk(Cursor& cursor, uint32_t max,
            const std::function<void(const SyncEntry&)>& visit) override;
  std::optional<SyncEntry> find(uint32_t vs_id, const IpAddress& client) override;
  bool write(const SyncEntry& entry, bool only_if_absent) override;
  std::optional<std::pair<std::string, std::string>> names(uint32_t vs_id,
                                                           uint32_t backend_id) override;
  std::optional<SyncTarget> target(const std::string& vs, const std::string& backend) override;
  bool walk_spi(Cursor& cursor, uint32_t max,
                const std::function<void(const SyncSpiEntry&)>& visit) override;
  bool add_spi(const SyncSpiEntry& entry) override;

 private:
  void refresh();

  Datapath& datapath_;
  const Controller& controller_;
  const SyncClock& clock_;
  uint64_t loaded_ns_ = 0;
  bool loaded_ = false;
  std::map<uint32_t, std::string> vs_names_;
  std::map<std::pair<uint32_t, uint32_t>, std::string> backend_names_;  // (vs id, backend id)
  std::map<std::pair<std::string, std::string>, SyncTarget> targets_;
};

}  // namespace ikelb
