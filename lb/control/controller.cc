#include "controller.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "log.h"
#include "maglev.h"
#include "spi_layout.h"

namespace ikelb {
namespace {

uint8_t config_state_of(const std::optional<ConfiguredState>& s) {
  if (!s) return IKELB_CONFIG_UNSET;
  switch (*s) {
    case ConfiguredState::kActive:
      return IKELB_CONFIG_ACTIVE;
    case ConfiguredState::kDraining:
      return IKELB_CONFIG_DRAINING;
    case ConfiguredState::kDisabled:
      return IKELB_CONFIG_DISABLED;
  }
  return IKELB_CONFIG_UNSET;
}

// The administrative state as a data-path state (ACTIVE, DRAINING or DISABLED).
uint8_t admin_state(uint8_t op, uint8_t cfg) {
  switch (op) {
    case IKELB_OPERATOR_DRAIN:
      return IKELB_BACKEND_DRAINING;
    case IKELB_OPERATOR_DISABLE:
      return IKELB_BACKEND_DISABLED;
    case IKELB_OPERATOR_ENABLE:
      return IKELB_BACKEND_ACTIVE;
  }
  if (cfg == IKELB_CONFIG_DRAINING) return IKELB_BACKEND_DRAINING;
  if (cfg == IKELB_CONFIG_DISABLED) return IKELB_BACKEND_DISABLED;
  return IKELB_BACKEND_ACTIVE;
}

std::string_view operator_name(uint8_t op) {
  switch (op) {
    case IKELB_OPERATOR_DRAIN:
      return "drain";
    case IKELB_OPERATOR_DISABLE:
      return "disable";
    case IKELB_OPERATOR_ENABLE:
      return "enable";
  }
  return "none";
}

void copy_name(char (&dst)[IKELB_NAME_LEN], const std::string& src) {
  std::memset(dst, 0, sizeof(dst));
  std::memcpy(dst, src.data(), std::min(src.size(), sizeof(dst) - 1));
}

std::string name_of(const char (&src)[IKELB_NAME_LEN]) {
  return std::string(src, strnlen(src, IKELB_NAME_LEN));
}

std::set<ServiceKey> services_of(const VirtualServerConfig& vs) {
  std::set<ServiceKey> keys;
  for (uint16_t port : vs.ports) keys.insert({vs.address, IPPROTO_UDP, port});
  // Non-first UDP fragments carry no port: the protocol-wide entry catches them.
  if (!vs.ports.empty()) keys.insert({vs.address, IPPROTO_UDP, 0});
  if (vs.esp) keys.insert({vs.address, IPPROTO_ESP, 0});
  return keys;
}

std::string label(const std::string& vs, const std::string& name) {
  return vs + "/" + name;
}

}  // namespace

ikelb_init_limit init_limit_entry(const std::optional<IkeInitLimit>& limit) {
  ikelb_init_limit e{};
  if (!limit) return e;
  // GCRA (ikelb_abi.h): one request per interval on average, `burst` at once.
  auto set = [](const std::optional<RateLimit>& r, __u64& interval, __u64& tolerance) {
    if (!r) return;
    interval = 1'000'000'000ull / r->rate;
    tolerance = uint64_t{r->burst - 1} * interval;
  };
  set(limit->per_source, e.source_interval_ns, e.source_tolerance_ns);
  set(limit->total, e.total_interval_ns, e.total_tolerance_ns);
  e.ipv6_prefix_len = static_cast<uint8_t>(limit->ipv6_prefix_len);
  return e;
}

ikelb_edge_settings edge_entry(const Config& config) {
  ikelb_edge_settings e{};
  switch (config.reverse_path_check) {
    case ReversePathCheck::kStrict:
      e.reverse_path = IKELB_RP_STRICT;
      break;
    case ReversePathCheck::kStrictMac:
      e.reverse_path = IKELB_RP_STRICT_MAC;
      break;
    case ReversePathCheck::kOff:
      e.reverse_path = IKELB_RP_OFF;
      break;
  }
  return e;
}

std::optional<OperatorAction> parse_action(std::string_view word) {
  if (word == "drain") return OperatorAction::kDrain;
  if (word == "undrain") return OperatorAction::kUndrain;
  if (word == "disable") return OperatorAction::kDisable;
  if (word == "enable") return OperatorAction::kEnable;
  return std::nullopt;
}

std::string_view change_reason(std::string_view cause) {
  if (cause.starts_with("operator")) return "operator";
  if (cause.starts_with("probe") || cause.starts_with("health")) return "probe";
  return "config";
}

uint8_t effective_state(uint8_t operator_state, uint8_t config_state, bool healthy) {
  uint8_t admin = admin_state(operator_state, config_state);
  if (admin == IKELB_BACKEND_DISABLED) return IKELB_BACKEND_DISABLED;
  if (!healthy) return IKELB_BACKEND_DOWN;
  return admin;
}

std::string_view state_name(uint8_t s) {
  switch (s) {
    case IKELB_BACKEND_ACTIVE:
      return "active";
    case IKELB_BACKEND_DRAINING:
      return "draining";
    case IKELB_BACKEND_DOWN:
      return "down";
    case IKELB_BACKEND_DISABLED:
      return "disabled";
  }
  return "unused";
}

Controller::Controller(MapWriter& maps, const Clock& clock) : maps_(maps), clock_(clock) {}

std::string Controller::adopt() {
  MapSnapshot snap = maps_.snapshot();
  for (const auto& [id, meta] : snap.vs_meta) {
    Vs v;
    v.id = id;
    v.cfg.name = name_of(meta.name);
    v.region_base = meta.region_base;
    v.table_size = meta.table_size;
    auto it = snap.vs.find(id);
    v.written = it != snap.vs.end();
    v.table_base = v.written ? it->second.table_base : meta.region_base;
    if (v.written) v.cfg.address = IpAddress{it->second.family, it->second.vip};
    vs_[v.cfg.name] = v;
  }
  for (const auto& [id, meta] : snap.backend_meta) {
    Backend b;
    b.id = id;
    b.vs = name_of(meta.vs);
    b.cfg.name = name_of(meta.name);
    b.operator_state = meta.operator_state;
    b.config_state = meta.config_state;
    b.healthy = meta.healthy != 0;
    if (!b.healthy) b.health_cause = "down before the agent restarted";
    auto it = snap.backends.find(id);
    if (it != snap.backends.end()) {
      b.written_state = it->second.state;
      b.vs_id = it->second.vs_id;
      b.cfg.address = IpAddress{it->second.family, it->second.addr};
    }
    b.changed = clock_.now();
    b.cause = "adopted from pinned state";
    backends_[id] = b;
  }
  services_.clear();
  for (const auto& [key, vs_id] : snap.services) services_.insert(key);
  reverse_ = snap.reverse;
  settings_ = snap.settings;
  spi_.clear();
  for (const auto& [vs_id, r] : snap.spi_routing) spi_[vs_id].routing = r;
  for (const auto& [key, backend_id] : snap.spi_labels)
    spi_[key.first].labels[key.second] = backend_id;
  if (vs_.empty() && backends_.empty()) return "";
  size_t drained = 0;
  for (const auto& [id, b] : backends_) drained += b.operator_state != IKELB_OPERATOR_NONE;
  return "adopted pinned state: " + std::to_string(vs_.size()) + " virtual servers, " +
         std::to_string(backends_.size()) + " backends, " + std::to_string(drained) +
         " operator overrides";
}

// Members: the backends whose state is, or is about to be written as, active (a table is
// written before the state of a backend that leaves it: see write_state_change).
std::vector<uint32_t> Controller::build_table(const Vs& vs,
                                              std::vector<FingerprintMember>* fp) const {
  std::vector<MaglevBackend> members;
  for (const auto& [id, b] : backends_)
    if (b.vs == vs.cfg.name &&
        effective_state(b.operator_state, b.config_state, b.healthy) == IKELB_BACKEND_ACTIVE &&
        b.cfg.weight > 0) {
      members.push_back({b.cfg.name, id, b.cfg.weight});
      if (fp) fp->push_back({b.cfg.name, b.cfg.address.str(), b.cfg.weight, id});
    }
  return build_maglev_table(members, vs.table_size);
}

// Writes the table into the inactive half, then switches the virtual server to it with one
// update: a packet sees the old table or the new one, never a mix.
void Controller::write_table(Vs& vs) {
  std::vector<FingerprintMember> members;
  std::vector<uint32_t> table = build_table(vs, &members);
  uint32_t half = vs.written && vs.table_base == vs.region_base ? vs.region_base + vs.table_size
                                                                : vs.region_base;
  maps_.write_table(half, table);
  ikelb_vs v{};
  v.vip = vs.cfg.address.addr;
  v.family = vs.cfg.address.family;
  v.table_base = half;
  v.table_size = vs.table_size;
  maps_.set_virtual_server(vs.id, v);
  vs.table_base = half;
  vs.written = true;
  vs.fingerprint = table_fingerprint(vs.table_size, std::move(members), table);
}

ikelb_backend_meta Controller::meta_of(const Backend& b) const {
  ikelb_backend_meta m{};
  copy_name(m.vs, b.vs);
  copy_name(m.name, b.cfg.name);
  m.operator_state = b.operator_state;
  m.config_state = b.config_state;
  m.healthy = b.healthy;
  return m;
}

// Writes a backend's effective state (and bookkeeping); logs a state change with its cause.
void Controller::write_backend(Backend& b, const std::string& cause) {
  uint8_t state = effective_state(b.operator_state, b.config_state, b.healthy);
  ikelb_backend be{};
  be.addr = b.cfg.address.addr;
  be.family = b.cfg.address.family;
  be.vs_id = b.vs_id;
  be.state = state;
  maps_.set_backend_meta(b.id, meta_of(b));
  maps_.set_backend(b.id, be);
  if (state != b.written_state) {
    log_info(label(b.vs, b.cfg.name) + " " + std::string(state_name(b.written_state)) + " -> " +
             std::string(state_name(state)) + ": " + cause);
    b.changed = clock_.now();
    b.cause = cause;
    if (b.written_state != IKELB_BACKEND_UNUSED) b.changes[std::string(change_reason(cause))]++;
    if (state != IKELB_BACKEND_DRAINING) b.pinned.reset();
  }
  b.written_state = state;
}

std::vector<std::string> Controller::apply(const Config& config) {
  std::vector<std::string> errors;

  // --- Plan: ids and table regions, nothing written yet. ---
  std::set<uint32_t> vs_ids_used;
  for (const auto& vsc : config.virtual_servers)
    if (auto it = vs_.find(vsc.name); it != vs_.end()) vs_ids_used.insert(it->second.id);
  std::map<std::string, uint32_t> new_vs_ids;
  uint32_t next_vs = 0;
  for (const auto& vsc : config.virtual_servers) {
    if (vs_.count(vsc.name)) continue;
    while (vs_ids_used.count(next_vs) ||
           std::any_of(vs_.begin(), vs_.end(), [&](auto& e) { return e.second.id == next_vs; }))
      next_vs++;
    if (next_vs >= IKELB_MAX_VS) {
      errors.push_back("more than " + std::to_string(IKELB_MAX_VS) + " virtual servers");
      return errors;
    }
    new_vs_ids[vsc.name] = next_vs;
    vs_ids_used.insert(next_vs);
  }

  // Table regions: a kept virtual server with the same table size keeps its region (the
  // inactive half is rewritten); others get a fresh region of 2 * M slots from free space.
  // Regions in use by the running config stay reserved until the switch.
  std::vector<std::pair<uint32_t, uint32_t>> used;  // [base, end)
  for (const auto& [name, v] : vs_)
    used.push_back({v.region_base, v.region_base + 2 * v.table_size});
  std::map<std::string, uint32_t> new_regions;
  for (const auto& vsc : config.virtual_servers) {
    auto it = vs_.find(vsc.name);
    if (it != vs_.end() && it->second.table_size == vsc.maglev_table_size) continue;
    uint32_t need = 2 * vsc.maglev_table_size, base = 0;
    std::sort(used.begin(), used.end());
    for (const auto& [b, e] : used) {
      if (base + need <= b) break;
      base = std::max(base, e);
    }
    if (uint64_t{base} + need > maps_.table_capacity()) {
      errors.push_back("the Maglev map has " + std::to_string(maps_.table_capacity()) +
                       " slots and cannot also hold " + std::to_string(need) + " for \"" +
                       vsc.name +
                       "\"; table sizes are fixed when the maps are created: teardown and "
                       "restart to grow them");
      continue;
    }
    new_regions[vsc.name] = base;
    used.push_back({base, base + need});
  }

  // Backend ids: same virtual server, name and address keep their id (and their pinned
  // clients); anything else is a new backend with a fresh id.
  std::map<std::pair<std::string, std::string>, uint32_t> kept;  // (vs, name) -> id
  for (const auto& vsc : config.virtual_servers)
    for (const auto& bc : vsc.backends)
      for (const auto& [id, b] : backends_)
        if (b.vs == vsc.name && b.cfg.name == bc.name && b.cfg.address == bc.address)
          kept[{vsc.name, bc.name}] = id;
  std::set<uint32_t> ids_taken;
  for (const auto& [id, b] : backends_) ids_taken.insert(id);
  std::map<std::pair<std::string, std::string>, uint32_t> fresh;
  uint32_t next_id = 0;
  for (const auto& vsc : config.virtual_servers)
    for (const auto& bc : vsc.backends) {
      if (kept.count({vsc.name, bc.name})) continue;
      while (ids_taken.count(next_id)) next_id++;
      if (next_id >= IKELB_MAX_BACKENDS) {
        errors.push_back("no free backend id: more than " + std::to_string(IKELB_MAX_BACKENDS) +
                         " backends between the running and the new config; apply the removal "
                         "first");
        return errors;
      }
      fresh[{vsc.name, bc.name}] = next_id;
      ids_taken.insert(next_id);
    }
  if (!errors.empty()) return errors;

  // --- Execute. ---
  settings_.affinity_idle_ns = uint64_t{config.affinity_idle_timeout_s} * 1'000'000'000ull;
  maps_.set_settings(settings_);
  maps_.set_edge(edge_entry(config));

  std::set<uint32_t> live_ids;
  std::vector<std::pair<uint32_t, std::string>> leaving;  // id, cause
  for (const auto& vsc : config.virtual_servers) {
    uint32_t vs_id = vs_.count(vsc.name) ? vs_[vsc.name].id : new_vs_ids[vsc.name];
    for (const auto& bc : vsc.backends) {
      bool is_new = fresh.count({vsc.name, bc.name}) > 0;
      uint32_t id = is_new ? fresh[{vsc.name, bc.name}] : kept[{vsc.name, bc.name}];
      Backend& b = backends_[id];
      std::string cause = is_new ? "added by config" : "config reloaded";
      if (is_new) {
        b = Backend{};
        b.id = id;
        b.changed = clock_.now();
      }
      uint8_t cfg_state = config_state_of(bc.state);
      if (!is_new && b.operator_state != IKELB_OPERATOR_NONE && cfg_state != b.config_state) {
        log_warning(label(vsc.name, bc.name) + ": the config now says \"" +
                    std::string(bc.state ? to_string(*bc.state) : "active (default)") +
                    "\", which replaces the operator's " +
                    std::string(operator_name(b.operator_state)));
        b.operator_state = IKELB_OPERATOR_NONE;
        cause = "config state changed, operator override dropped";
      }
      b.vs = vsc.name;
      b.vs_id = vs_id;
      b.cfg = bc;
      b.config_state = cfg_state;
      live_ids.insert(id);
      // A backend leaving the table: its state is written after the new table (see
      // write_state_change).
      if (b.written_state == IKELB_BACKEND_ACTIVE &&
          effective_state(b.operator_state, b.config_state, b.healthy) != IKELB_BACKEND_ACTIVE)
        leaving.push_back({id, cause});
      else
        write_backend(b, cause);
      // Before any table can send a client there, so its first reply is translated.
      maps_.set_reverse(bc.address, {.vip = vsc.address.addr, .vs_id = vs_id, .backend_id = id});
    }
  }

  // Backends the config dropped leave the tables now; their entries are freed after the switch.
  std::vector<Backend> removed;
  for (auto it = backends_.begin(); it != backends_.end();) {
    if (live_ids.count(it->first)) {
      ++it;
      continue;
    }
    removed.push_back(it->second);
    it = backends_.erase(it);
  }

  // Tables: every virtual server gets a fresh table in its inactive half and one switch.
  for (const auto& vsc : config.virtual_servers) {
    Vs& v = vs_[vsc.name];
    if (new_vs_ids.count(vsc.name)) {
      v = Vs{};
      v.id = new_vs_ids[vsc.name];
    }
    v.cfg = vsc;
    if (auto r = new_regions.find(vsc.name); r != new_regions.end()) {
      v.region_base = r->second;
      v.table_size = vsc.maglev_table_size;
      v.written = false;  // write the first half of the new region
    }
    ikelb_vs_meta meta{};
    copy_name(meta.name, vsc.name);
    meta.region_base = v.region_base;
    meta.table_size = v.table_size;
    maps_.set_vs_meta(v.id, meta);
    maps_.set_init_limit(v.id, init_limit_entry(vsc.ike_sa_init_limit));
    write_table(v);
  }
  for (const auto& [id, cause] : leaving) write_backend(backends_.at(id), cause);

  // SPI routing: every backend is written, none removed yet, so each label names a live id.
  for (const auto& vsc : config.virtual_servers) {
    const uint32_t vs_id = vs_[vsc.name].id;
    std::map<uint32_t, uint32_t> labels;
    for (const auto& [id, b] : backends_)
      if (b.vs == vsc.name && b.cfg.spi_id) labels[*b.cfg.spi_id] = id;
    write_spi(vs_id, spi_routing_entry(vsc.spi_routing), labels);
  }

  // Services and reverse entries: add the new ones, then remove what the config dropped.
  std::set<ServiceKey> services;
  for (const auto& vsc : config.virtual_servers)
    for (const ServiceKey& k : services_of(vsc)) {
      services.insert(k);
      maps_.set_service(k, vs_[vsc.name].id);
    }
  for (const ServiceKey& k : services_)
    if (!services.count(k)) maps_.delete_service(k);
  services_ = services;

  std::vector<IpAddress> reverse;
  for (const auto& vsc : config.virtual_servers)
    for (const auto& bc : vsc.backends) reverse.push_back(bc.address);
  for (const IpAddress& a : reverse_)
    if (std::find(reverse.begin(), reverse.end(), a) == reverse.end()) maps_.delete_reverse(a);
  reverse_ = reverse;

  // Removed backends and virtual servers: free their ids once no table points at them.
  for (const Backend& b : removed) {
    log_info(label(b.vs, b.cfg.name) + " removed by config");
    maps_.set_backend(b.id, ikelb_backend{});
    maps_.set_backend_meta(b.id, ikelb_backend_meta{});
  }
  for (auto it = vs_.begin(); it != vs_.end();) {
    bool keep = std::any_of(config.virtual_servers.begin(), config.virtual_servers.end(),
                            [&](const auto& v) { return v.name == it->first; });
    if (keep) {
      ++it;
      continue;
    }
    log_info("virtual server " + it->first + " removed by config");
    write_spi(it->second.id, ikelb_spi_routing{}, {});
    spi_.erase(it->second.id);
    maps_.delete_virtual_server(it->second.id);
    maps_.set_vs_meta(it->second.id, ikelb_vs_meta{});
    maps_.set_init_limit(it->second.id, ikelb_init_limit{});
    it = vs_.erase(it);
  }
  maps_.flush();
  return errors;
}

// A change of the label layout or of any label is written with labels off: first the entry
// without IKELB_SPI_LABELS, then the labels, then the new entry. A packet reads either the old
// layout with the old labels, no labels at all (it falls back to affinity and Maglev), or the new
// layout with the new labels; never a mix.
void Controller::write_spi(uint32_t vs_id, const ikelb_spi_routing& want,
                           const std::map<uint32_t, uint32_t>& labels) {
  SpiState& cur = spi_[vs_id];
  static const std::map<uint32_t, uint32_t> kNone;
  const bool labels_on = want.flags & IKELB_SPI_LABELS;
  const auto& target = labels_on ? labels : kNone;
  const bool same_layout =
      cur.routing.ike_mask == want.ike_mask && cur.routing.ike_shift == want.ike_shift &&
      cur.routing.esp_mask == want.esp_mask && cur.routing.esp_shift == want.esp_shift;
  const bool rewrite = cur.labels != target || (labels_on && !same_layout);
  if (rewrite && (cur.routing.flags & IKELB_SPI_LABELS)) {
    cur.routing.flags &= ~IKELB_SPI_LABELS;
    maps_.set_spi_routing(vs_id, cur.routing);
  }
  if (rewrite) {
    for (const auto& [id, backend_id] : cur.labels)
      if (!target.count(id)) maps_.delete_spi_label(vs_id, id);
    for (const auto& [id, backend_id] : target) {
      auto it = cur.labels.find(id);
      if (it == cur.labels.end() || it->second != backend_id)
        maps_.set_spi_label(vs_id, id, backend_id);
    }
    cur.labels = target;
  }
  if (std::memcmp(&cur.routing, &want, sizeof(want)) != 0) {
    maps_.set_spi_routing(vs_id, want);
    cur.routing = want;
  }
}

uint32_t Controller::find_backend(std::string_view ref) const {
  std::string vs, name(ref);
  if (auto slash = ref.find('/'); slash != std::string_view::npos) {
    vs = std::string(ref.substr(0, slash));
    name = std::string(ref.substr(slash + 1));
  }
  std::vector<uint32_t> hits;
  for (const auto& [id, b] : backends_)
    if (b.cfg.name == name && (vs.empty() || b.vs == vs)) hits.push_back(id);
  if (hits.empty()) throw ControlError(404, "no backend \"" + std::string(ref) + "\"");
  if (hits.size() > 1) {
    std::string where;
    for (uint32_t id : hits)
      where += (where.empty() ? "" : ", ") + label(backends_.at(id).vs, name);
    throw ControlError(409, "\"" + name + "\" is ambiguous: say one of " + where);
  }
  return hits[0];
}

std::optional<uint32_t> Controller::backend_id(std::string_view ref) const {
  try {
    return find_backend(ref);
  } catch (const ControlError&) {
    return std::nullopt;
  }
}

std::string Controller::act(std::string_view ref, OperatorAction action) {
  Backend& b = backends_.at(find_backend(ref));
  const std::string who = label(b.vs, b.cfg.name);
  uint8_t admin = admin_state(b.operator_state, b.config_state);
  uint8_t op = b.operator_state;
  uint8_t config_admin = admin_state(IKELB_OPERATOR_NONE, b.config_state);
  std::string verb;
  switch (action) {
    case OperatorAction::kDrain:
      if (admin == IKELB_BACKEND_DISABLED)
        throw ControlError(409, who + " is disabled; enable it before draining");
      op = config_admin == IKELB_BACKEND_DRAINING ? IKELB_OPERATOR_NONE : IKELB_OPERATOR_DRAIN;
      verb = "drain";
      break;
    case OperatorAction::kUndrain:
      if (admin != IKELB_BACKEND_DRAINING)
        throw ControlError(409, who + " is not draining (" + std::string(state_name(admin)) + ")");
      op = config_admin == IKELB_BACKEND_ACTIVE ? IKELB_OPERATOR_NONE : IKELB_OPERATOR_ENABLE;
      verb = "undrain";
      break;
    case OperatorAction::kDisable:
      op = config_admin == IKELB_BACKEND_DISABLED ? IKELB_OPERATOR_NONE : IKELB_OPERATOR_DISABLE;
      verb = "disable";
      break;
    case OperatorAction::kEnable:
      if (admin != IKELB_BACKEND_DISABLED)
        throw ControlError(409, who + " is not disabled (" + std::string(state_name(admin)) + ")");
      op = config_admin == IKELB_BACKEND_ACTIVE ? IKELB_OPERATOR_NONE : IKELB_OPERATOR_ENABLE;
      verb = "enable";
      break;
  }
  b.operator_state = op;
  write_state_change(b, "operator: " + verb);
  return who + ": " + std::string(state_name(b.written_state));
}

bool Controller::set_health(uint32_t id, bool healthy, const std::string& cause) {
  auto it = backends_.find(id);
  if (it == backends_.end()) return false;
  Backend& b = it->second;
  b.health_cause = cause;
  if (b.healthy == healthy) return false;
  uint8_t before = b.written_state;
  b.healthy = healthy;
  write_state_change(b, cause);
  return before != b.written_state;
}

// A backend leaving the table: the new table first, its state after; one joining: its state
// first. Then no table ever names a backend that cannot take new clients. (Otherwise a client
// failing over or arriving in between takes the data path's slot-probing fallback and is pinned
// to another backend than the new table names, and than another ikelb node picks.)
void Controller::write_state_change(Backend& b, const std::string& cause) {
  const bool was_active = b.written_state == IKELB_BACKEND_ACTIVE;
  const bool active =
      effective_state(b.operator_state, b.config_state, b.healthy) == IKELB_BACKEND_ACTIVE;
  if (was_active && !active) write_table(vs_.at(b.vs));
  write_backend(b, cause);
  if (!was_active && active) write_table(vs_.at(b.vs));
}

void Controller::set_pinned_counts(const std::map<uint32_t, uint64_t>& counts) {
  for (auto& [id, b] : backends_) {
    auto it = counts.find(id);
    uint64_t n = it == counts.end() ? 0 : it->second;
    if (b.written_state == IKELB_BACKEND_DRAINING && n == 0 && b.pinned.value_or(1) != 0)
      log_info(label(b.vs, b.cfg.name) + " drained: no pinned clients left");
    b.pinned = n;
  }
}

std::vector<BackendView> Controller::backends() const {
  std::vector<BackendView> out;
  for (const auto& [id, b] : backends_) {
    BackendView v;
    v.vs = b.vs;
    v.name = b.cfg.name;
    v.address = b.cfg.address;
    v.id = id;
    v.weight = b.cfg.weight;
    v.state = state_name(b.written_state);
    v.detail = v.state;
    if (b.written_state == IKELB_BACKEND_DRAINING) {
      if (!b.pinned)
        v.detail = "draining (counting clients)";
      else if (*b.pinned == 0)
        v.state = v.detail = "drained";
      else
        v.detail = "draining (" + std::to_string(*b.pinned) + " clients)";
    } else if (b.written_state == IKELB_BACKEND_DOWN) {
      v.detail = "down (" + b.health_cause + ")";
    }
    v.admin_state = state_name(admin_state(b.operator_state, b.config_state));
    v.operator_state = operator_name(b.operator_state);
    v.healthy = b.healthy;
    v.health_cause = b.health_cause;
    v.pinned_clients = b.pinned;
    v.spi_id = b.cfg.spi_id;
    v.last_change = b.changed;
    v.last_cause = b.cause;
    v.changes = b.changes;
    out.push_back(v);
  }
  return out;
}

std::vector<VirtualServerView> Controller::virtual_servers() const {
  std::vector<VirtualServerView> out;
  for (const auto& [name, v] : vs_) {
    VirtualServerView view{name, v.cfg.address, v.id, v.table_size, v.table_base, 0,
                           0,    v.fingerprint};
    for (const auto& [id, b] : backends_)
      if (b.vs == name) {
        view.backends++;
        view.in_table += b.written_state == IKELB_BACKEND_ACTIVE && b.cfg.weight > 0;
      }
    out.push_back(view);
  }
  return out;
}

}  // namespace ikelb
