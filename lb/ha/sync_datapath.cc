#include "sync_datapath.h"

#include <ctime>

namespace ikelb {

namespace {

SyncEntry sync_entry(uint32_t vs_id, const IpAddress& client, const ikelb_affinity_value& v) {
  SyncEntry e;
  e.vs_id = vs_id;
  e.backend_id = v.backend_id;
  e.client = client;
  e.last_seen_ns = v.last_seen_ns;
  e.flags = v.flags;
  return e;
}

}  // namespace

uint64_t SystemSyncClock::unix_ms() const {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1'000'000;
}

uint64_t SystemSyncClock::mono_ns() const {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000ull + uint64_t(ts.tv_nsec);
}

void DatapathSyncStore::refresh() {
  const uint64_t now = clock_.mono_ns();
  if (loaded_ && now - loaded_ns_ < 100'000'000) return;
  loaded_ = true;
  loaded_ns_ = now;
  vs_names_.clear();
  backend_names_.clear();
  targets_.clear();
  std::map<std::string, uint32_t> vs_ids;
  for (const VirtualServerView& v : controller_.virtual_servers()) {
    vs_names_[v.id] = v.name;
    vs_ids[v.name] = v.id;
  }
  for (const BackendView& b : controller_.backends()) {
    auto vs = vs_ids.find(b.vs);
    if (vs == vs_ids.end()) continue;
    backend_names_[{vs->second, b.id}] = b.name;
    const bool serving = b.state == "active" || b.state == "draining" || b.state == "drained";
    targets_[{b.vs, b.name}] = SyncTarget{vs->second, b.id, serving};
  }
}

bool DatapathSyncStore::walk(Cursor& cursor, uint32_t max,
                             const std::function<void(const SyncEntry&)>& visit) {
  Datapath::AffinityCursor c{cursor.token, cursor.started};
  const bool more = datapath_.scan_affinity(
      c, max, [&](const ikelb_affinity_key& k, const ikelb_affinity_value& v) {
        visit(sync_entry(k.vs_id, IpAddress{k.family, k.client}, v));
      });
  cursor.token = c.token;
  cursor.started = c.started;
  return more;
}

std::optional<SyncEntry> DatapathSyncStore::find(uint32_t vs_id, const IpAddress& client) {
  auto v = datapath_.affinity(vs_id, client);
  if (!v) return std::nullopt;
  return sync_entry(vs_id, client, *v);
}

bool DatapathSyncStore::write(const SyncEntry& entry, bool only_if_absent) {
  ikelb_affinity_value v{};
  v.backend_id = entry.backend_id;
  v.flags = entry.flags;
  v.last_seen_ns = entry.last_seen_ns;
  if (only_if_absent) return datapath_.add_affinity(entry.vs_id, entry.client, v);
  datapath_.set_affinity(entry.vs_id, entry.client, v);
  return true;
}

std::optional<std::pair<std::string, std::string>> DatapathSyncStore::names(uint32_t vs_id,
                                                                            uint32_t backend_id) {
  refresh();
  auto vs = vs_names_.find(vs_id);
  auto b = backend_names_.find({vs_id, backend_id});
  if (vs == vs_names_.end() || b == backend_names_.end()) return std::nullopt;
  return std::make_pair(vs->second, b->second);
}

std::optional<SyncTarget> DatapathSyncStore::target(const std::string& vs,
                                                    const std::string& backend) {
  refresh();
  auto it = targets_.find({vs, backend});
  if (it == targets_.end()) return std::nullopt;
  return it->second;
}

bool DatapathSyncStore::walk_spi(Cursor& cursor, uint32_t max,
                                 const std::function<void(const SyncSpiEntry&)>& visit) {
  Datapath::AffinityCursor c{cursor.token, cursor.started};
  const bool more = datapath_.scan_spi_owners(
      c, max, [&](const ikelb_spi_owner_key& k, const ikelb_spi_owner& v) {
        SyncSpiEntry e;
        e.vs_id = k.vs_id;
        e.kind = k.kind;
        e.spi = k.spi;
        e.backend_id = v.backend_id;
        e.last_seen_ns = v.last_seen_ns;
        visit(e);
      });
  cursor.token = c.token;
  cursor.started = c.started;
  return more;
}

bool DatapathSyncStore::add_spi(const SyncSpiEntry& entry) {
  ikelb_spi_owner_key k{};
  k.spi = entry.spi;
  k.vs_id = entry.vs_id;
  k.kind = entry.kind;
  ikelb_spi_owner v{};
  v.backend_id = entry.backend_id;
  v.last_seen_ns = entry.last_seen_ns;
  return datapath_.add_spi_owner(k, v);
}

}  // namespace ikelb
