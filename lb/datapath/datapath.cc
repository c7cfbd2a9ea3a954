#include "datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "ikelb.skel.h"

namespace ikelb {
namespace {

[[noreturn]] void fail(int err, const std::string& what) {
  throw std::system_error(err < 0 ? -err : err, std::generic_category(), what);
}

void check(int rc, const std::string& what) {
  if (rc < 0) fail(errno ? errno : -rc, what);
}

#define IKELB_X_LABEL(name, label) label,
constexpr const char* kOutcomeNames[] = {IKELB_OUTCOMES(IKELB_X_LABEL)};
constexpr const char* kEventNames[] = {IKELB_EVENTS(IKELB_X_LABEL)};
#undef IKELB_X_LABEL
static_assert(std::size(kOutcomeNames) == IKELB_OUTCOME_MAX);
static_assert(std::size(kEventNames) == IKELB_EVENT_MAX);

}  // namespace

std::string_view outcome_name(uint32_t outcome) {
  return outcome < IKELB_OUTCOME_MAX ? kOutcomeNames[outcome] : "";
}

std::string_view event_name(uint32_t event) {
  return event < IKELB_EVENT_MAX ? kEventNames[event] : "";
}

void Datapath::SkelDeleter::operator()(::ikelb_bpf* s) const {
  ikelb_bpf__destroy(s);
}

namespace {

bool exists(const std::string& path) {
  return access(path.c_str(), F_OK) == 0;
}

bpf_map_info map_info(int fd, const std::string& what) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  check(bpf_obj_get_info_by_fd(fd, &info, &len), "reading map info of " + what);
  return info;
}

// Every key of a hash map (get_next_key walk).
template <typename Key>
std::vector<Key> hash_keys(int fd) {
  std::vector<Key> keys;
  Key key{}, next{};
  const Key* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    keys.push_back(next);
    key = next;
    prev = &key;
  }
  return keys;
}

template <typename Value>
std::optional<Value> lookup(int fd, const void* key) {
  Value v{};
  if (bpf_map_lookup_elem(fd, key, &v) != 0) return std::nullopt;
  return v;
}

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

}  // namespace

Datapath::Datapath(const Options& options) : pin_dir_(options.pin_dir) {
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) fail(-ncpus, "counting possible CPUs");
  ncpus_ = static_cast<unsigned>(ncpus);

  skel_.reset(ikelb_bpf__open());
  if (!skel_) fail(errno, "opening the ikelb BPF object");
  check(bpf_map__set_max_entries(skel_->maps.maglev, options.table_slots), "sizing the maglev map");
  check(bpf_map__set_max_entries(skel_->maps.affinity, options.affinity_entries),
        "sizing the affinity map");

  if (!pin_dir_.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(pin_dir_, ec);
    if (ec) fail(ec.value(), "creating pin directory " + pin_dir_);
    struct statfs fs {};
    if (statfs(pin_dir_.c_str(), &fs) != 0) fail(errno, "statfs " + pin_dir_);
    if (static_cast<uint64_t>(fs.f_type) != BPF_FS_MAGIC)
      fail(EINVAL, "pin directory " + pin_dir_ + " is not on a bpf filesystem (mount -t bpf)");
    bpf_map* m;
    bpf_object__for_each_map(m, skel_->obj) {
      std::string name = bpf_map__name(m);
      // .rodata/.bss, and what is derived below (address filter, replies, records): never
      // pinned.
      if (name.find('.') != std::string::npos || name == IKELB_MAP_ADDR_FILTER ||
          name == IKELB_MAP_REPLIES || name == IKELB_MAP_VIP_RECORDS ||
          name == IKELB_MAP_REPLY_RECORDS)
        continue;
      std::string path = pin_dir_ + "/" + name;
      if (exists(path)) {
        Fd fd(bpf_obj_get(path.c_str()));
        if (fd.fd < 0) fail(errno, "opening pinned map " + path);
        bpf_map_info info = map_info(fd.fd, path);
        if (info.type != static_cast<uint32_t>(bpf_map__type(m)) ||
            info.key_size != bpf_map__key_size(m) || info.value_size != bpf_map__value_size(m))
          fail(EINVAL, "pinned map " + path +
                           " has a layout this ikelbd does not know (older or newer version); "
                           "`ikelbctl teardown` removes it, and the affinity table with it");
        if (info.max_entries < bpf_map__max_entries(m) &&
            (name == IKELB_MAP_OUTCOMES || name == IKELB_MAP_EVENTS)) {
          // An older version's counter array has no slots for this one's new counters.
          notes_.push_back("map " + name + " starts from zero: this version counts more kinds");
          if (unlink(path.c_str()) != 0) fail(errno, "replacing pinned map " + path);
          check(bpf_map__set_pin_path(m, path.c_str()), "setting pin path " + path);
          continue;
        }
        if (info.max_entries != bpf_map__max_entries(m)) {
          notes_.push_back("map " + name + " keeps its pinned size " +
                           std::to_string(info.max_entries) + " (configured " +
                           std::to_string(bpf_map__max_entries(m)) +
                           "); a new size takes effect after a teardown");
          check(bpf_map__set_max_entries(m, info.max_entries), "sizing " + name);
        }
        // Our own check above replaces libbpf's, which also compares flags the kernel adds
        // itself (BPF_F_RDONLY_PROG on devmaps) and so would refuse a map it created.
        check(bpf_map__reuse_fd(m, fd.fd), "adopting pinned map " + path);
        adopted_.push_back(name);
        continue;
      }
      check(bpf_map__set_pin_path(m, path.c_str()), "setting pin path " + path);
    }
  }
  // Without CAP_PERFMON the verifier refuses the program (EACCES); a container's default
  // seccomp profile refuses bpf() itself (EPERM).
  check(ikelb_bpf__load(skel_.get()),
        "loading the ikelb BPF object (needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN, and in a "
        "container a seccomp profile that allows bpf())");
  // Before any program that reads them is attached: the adopted maps may hold VIPs already.
  derive_from_adopted_maps();
}

Datapath::~Datapath() {
  for (auto& [ifname, fd] : link_fds_) close(fd);
  for (int fd : {grace_outer_, grace_inner_})
    if (fd >= 0) close(fd);
}

int Datapath::prog_fd() const {
  return bpf_program__fd(skel_->progs.ikelb_xdp);
}

uint32_t Datapath::prog_id() const {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd(), &info, &len) != 0) return 0;
  return info.id;
}

int Datapath::map_fd(std::string_view name) const {
  bpf_map* m = bpf_object__find_map_by_name(skel_->obj, std::string(name).c_str());
  if (!m) fail(ENOENT, "no map named " + std::string(name));
  return bpf_map__fd(m);
}

namespace {

ikelb_vip_key vip_key(const ServiceKey& k) {
  ikelb_vip_key key{};
  key.addr = k.vip.addr;
  key.family = k.vip.family;
  key.proto = k.proto;
  key.port = htons(k.port);
  return key;
}

ikelb_reverse_key reverse_key(const IpAddress& a) {
  ikelb_reverse_key key{};
  key.addr = a.addr;
  key.family = a.family;
  return key;
}

std::string describe(const ServiceKey& k) {
  return k.vip.str() + "/" + std::to_string(k.proto) + "/" + std::to_string(k.port);
}

// Deleting what is already gone is fine: the goal is its absence. True if an entry went.
bool check_delete(int rc, const std::string& what) {
  if (rc < 0 && errno != ENOENT) fail(errno, what);
  return rc == 0;
}

}  // namespace

// vips and replies change in an order that keeps what replies lists a subset of vips (a port
// is added to vips first and removed from replies first), so a reply is never translated for a
// port that is not a service. The VIP's record stops being read before vips changes at all.
void Datapath::set_service(const ServiceKey& k, uint32_t vs_id) {
  auto key = vip_key(k);
  const auto cur = services_.find(k);
  const bool is_new = cur == services_.end();
  if (is_new || cur->second != vs_id) unpublish(k.vip, IKELB_ADDR_RECORD, unpublished_vips_);
  if (is_new) count_address(key.addr, key.family, IKELB_ADDR_VIP, true);
  ikelb_vip_value value{.vs_id = vs_id, .pad = 0};
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.vips), &key, &value, BPF_ANY),
        "writing service " + describe(k));
  services_[k] = vs_id;
  if (is_new) rewrite_replies(k.vip);
}

void Datapath::delete_service(const ServiceKey& k) {
  unpublish(k.vip, IKELB_ADDR_RECORD, unpublished_vips_);
  services_.erase(k);
  rewrite_replies(k.vip);
  auto key = vip_key(k);
  if (check_delete(bpf_map_delete_elem(bpf_map__fd(skel_->maps.vips), &key),
                   "deleting service " + describe(k)))
    count_address(key.addr, key.family, IKELB_ADDR_VIP, false);
}

void Datapath::set_virtual_server(uint32_t vs_id, const ikelb_vs& v) {
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.vs), &vs_id, &v, BPF_ANY),
        "writing virtual server " + std::to_string(vs_id));
}

void Datapath::delete_virtual_server(uint32_t vs_id) {
  check_delete(bpf_map_delete_elem(bpf_map__fd(skel_->maps.vs), &vs_id),
               "deleting virtual server " + std::to_string(vs_id));
}

uint32_t Datapath::table_capacity() const {
  return bpf_map__max_entries(skel_->maps.maglev);
}

void Datapath::write_table(uint32_t base, std::span<const uint32_t> slots) {
  if (uint64_t{base} + slots.size() > table_capacity())
    fail(ENOSPC, "Maglev slots " + std::to_string(base) + "+" + std::to_string(slots.size()) +
                     " beyond the map's " + std::to_string(table_capacity()));
  std::vector<uint32_t> keys(slots.size());
  for (size_t i = 0; i < slots.size(); i++) keys[i] = base + static_cast<uint32_t>(i);
  uint32_t count = static_cast<uint32_t>(slots.size());
  check(bpf_map_update_batch(bpf_map__fd(skel_->maps.maglev), keys.data(), slots.data(), &count,
                             nullptr),
        "writing Maglev slots at " + std::to_string(base));
}

void Datapath::set_backend(uint32_t id, const ikelb_backend& b) {
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.backends), &id, &b, BPF_ANY),
        "writing backend " + std::to_string(id));
}

void Datapath::set_reverse(const IpAddress& backend, const ikelb_reverse_value& value) {
  auto key = reverse_key(backend);
  if (!replies_.contains(backend)) count_address(key.addr, key.family, IKELB_ADDR_BACKEND, true);
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.reverse), &key, &value, BPF_ANY),
        "writing reverse entry for " + backend.str());
  write_reply(backend, reply_of(value, backend.family));
}

void Datapath::delete_reverse(const IpAddress& backend) {
  unpublish(backend, IKELB_ADDR_REPLY_RECORD, unpublished_replies_);
  auto key = reverse_key(backend);
  check_delete(bpf_map_delete_elem(bpf_map__fd(skel_->maps.replies), &key),
               "deleting the reply entry for " + backend.str());
  replies_.erase(backend);
  if (check_delete(bpf_map_delete_elem(bpf_map__fd(skel_->maps.reverse), &key),
                   "deleting reverse entry for " + backend.str()))
    count_address(key.addr, key.family, IKELB_ADDR_BACKEND, false);
}

ikelb_reply Datapath::reply_of(const ikelb_reverse_value& rev, uint8_t family) const {
  ikelb_reply r{};
  r.rev = rev;
  const IpAddress vip{family, rev.vip};
  size_t ports = 0;
  for (auto it = services_.lower_bound(ServiceKey{vip, 0, 0});
       it != services_.end() && it->first.vip == vip; ++it) {
    const ServiceKey& k = it->first;
    if (k.proto == IPPROTO_ESP)
      r.esp = 1;
    else if (k.proto != IPPROTO_UDP || k.port == 0)
      continue;
    else if (ports < IKELB_REPLY_PORTS)
      r.udp_ports[ports++] = htons(k.port);
    else
      r.more = 1;
  }
  return r;
}

std::optional<ikelb_vip_record> Datapath::vip_record_of(uint32_t slot) const {
  ikelb_vip_record r{};
  std::optional<IpAddress> vip;
  for (const auto& [k, vs_id] : services_) {
    if (ikelb_addr_slot(&k.vip.addr, k.vip.family) != slot) continue;
    if (vip && *vip != k.vip) return std::nullopt;  // a second VIP: vips answers for both
    if (r.count == IKELB_VIP_RECORD_SERVICES) return std::nullopt;
    vip = k.vip;
    r.services[r.count++] = {.port = htons(k.port), .proto = k.proto, .pad = 0, .vs_id = vs_id};
  }
  if (!vip) return std::nullopt;
  r.addr = vip->addr;
  r.family = vip->family;
  return r;
}

std::optional<ikelb_reply_record> Datapath::reply_record_of(uint32_t slot) const {
  std::optional<ikelb_reply_record> r;
  for (const auto& [backend, reply] : replies_) {
    if (ikelb_addr_slot(&backend.addr, backend.family) != slot) continue;
    if (r) return std::nullopt;  // a second backend: replies answers for both
    r = ikelb_reply_record{
        .addr = backend.addr, .family = backend.family, .pad = {}, .reply = reply};
  }
  return r;
}

void Datapath::unpublish(const IpAddress& addr, uint8_t bit, std::set<uint32_t>& slots) {
  const uint32_t slot = ikelb_addr_slot(&addr.addr, addr.family);
  slots.insert(slot);
  uint8_t& kinds = addr_filter_.kinds[slot];
  if (!(kinds & bit)) return;
  kinds &= ~bit;
  write_addr_filter();
}

// Records are written only where unpublish cleared the bit, and bits set only after the records:
// see ikelb_abi.h, struct ikelb_vip_record.
void Datapath::flush() {
  if (unpublished_vips_.empty() && unpublished_replies_.empty()) return;
  grace_period();  // no program still reads a record whose bit unpublish cleared
  std::vector<std::pair<uint32_t, uint8_t>> published;  // slot, bit
  auto write = [&](int fd, uint32_t slot, const void* record, uint8_t bit) {
    check(bpf_map_update_elem(fd, &slot, record, BPF_ANY),
          "writing a record of address filter slot " + std::to_string(slot));
    published.emplace_back(slot, bit);
  };
  for (uint32_t slot : unpublished_vips_)
    if (const auto r = vip_record_of(slot))
      write(bpf_map__fd(skel_->maps.vip_records), slot, &*r, IKELB_ADDR_RECORD);
  for (uint32_t slot : unpublished_replies_)
    if (const auto r = reply_record_of(slot))
      write(bpf_map__fd(skel_->maps.reply_records), slot, &*r, IKELB_ADDR_REPLY_RECORD);
  unpublished_vips_.clear();
  unpublished_replies_.clear();
  if (published.empty()) return;
  grace_period();  // every CPU sees the records before a bit says to read them
  for (const auto& [slot, bit] : published) addr_filter_.kinds[slot] |= bit;
  write_addr_filter();
}

void Datapath::grace_period() {
  if (grace_outer_ < 0) {
    grace_inner_ = bpf_map_create(BPF_MAP_TYPE_ARRAY, "ikelb_grace_in", 4, 4, 1, nullptr);
    if (grace_inner_ < 0) fail(errno, "creating the grace period's inner map");
    LIBBPF_OPTS(bpf_map_create_opts, opts, .inner_map_fd = static_cast<__u32>(grace_inner_));
    grace_outer_ = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "ikelb_grace", 4, 4, 1, &opts);
    if (grace_outer_ < 0) fail(errno, "creating the grace period's map");
  }
  uint32_t zero = 0;
  check(bpf_map_update_elem(grace_outer_, &zero, &grace_inner_, BPF_ANY),
        "waiting for a grace period");
}

void Datapath::write_reply(const IpAddress& backend, const ikelb_reply& reply) {
  if (auto it = replies_.find(backend);
      it != replies_.end() && std::memcmp(&it->second, &reply, sizeof(reply)) == 0)
    return;
  unpublish(backend, IKELB_ADDR_REPLY_RECORD, unpublished_replies_);
  auto key = reverse_key(backend);
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.replies), &key, &reply, BPF_ANY),
        "writing the reply entry for " + backend.str());
  replies_[backend] = reply;
}

void Datapath::rewrite_replies(const IpAddress& vip) {
  for (const auto& [backend, cur] : replies_) {
    if (IpAddress{backend.family, cur.rev.vip} != vip) continue;
    const ikelb_reply want = reply_of(cur.rev, backend.family);
    if (std::memcmp(&want, &cur, sizeof(want)) != 0) write_reply(backend, want);
  }
}

void Datapath::set_vs_meta(uint32_t vs_id, const ikelb_vs_meta& meta) {
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.vs_meta), &vs_id, &meta, BPF_ANY),
        "writing virtual server bookkeeping " + std::to_string(vs_id));
}

void Datapath::set_backend_meta(uint32_t id, const ikelb_backend_meta& meta) {
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.backend_meta), &id, &meta, BPF_ANY),
        "writing backend bookkeeping " + std::to_string(id));
}

void Datapath::add_tx_port(uint32_t ifindex) {
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.tx_ports), &ifindex, &ifindex, BPF_ANY),
        "adding tx port " + std::to_string(ifindex));
}

size_t Datapath::set_local_addresses(const std::vector<IpAddress>& addrs) {
  int fd = bpf_map__fd(skel_->maps.local_addrs);
  auto key_of = [](const IpAddress& a) {
    ikelb_local_key k{};
    k.addr = a.addr;
    k.family = a.family;
    return k;
  };
  size_t changed = 0;
  std::vector<ikelb_local_key> wanted;
  for (const IpAddress& a : addrs) {
    ikelb_local_key k = key_of(a);
    wanted.push_back(k);
    uint32_t one = 1, cur = 0;
    if (bpf_map_lookup_elem(fd, &k, &cur) == 0) continue;
    count_address(k.addr, k.family, IKELB_ADDR_LOCAL, true);
    check(bpf_map_update_elem(fd, &k, &one, BPF_ANY), "adding local address " + a.str());
    changed++;
  }
  std::vector<ikelb_local_key> stale;
  for (const ikelb_local_key& k : hash_keys<ikelb_local_key>(fd))
    if (std::none_of(wanted.begin(), wanted.end(),
                     [&](const auto& w) { return std::memcmp(&w, &k, sizeof(w)) == 0; }))
      stale.push_back(k);
  for (const auto& s : stale) {
    if (check_delete(bpf_map_delete_elem(fd, &s), "removing a local address"))
      count_address(s.addr, s.family, IKELB_ADDR_LOCAL, false);
    changed++;
  }
  return changed;
}

// The program reads the filter while it changes; that is safe because each slot is a byte (a
// store the program sees whole) and a slot loses a kind only once no entry of that kind is left
// behind it. Only the agent's thread writes it.
void Datapath::count_address(const ikelb_addr& addr, uint8_t family, uint8_t kind, bool added) {
  if (tally_address(addr, family, kind, added)) write_addr_filter();
}

bool Datapath::tally_address(const ikelb_addr& addr, uint8_t family, uint8_t kind, bool added) {
  const uint32_t slot = ikelb_addr_slot(&addr, family);
  uint32_t& n = addr_counts_[slot][std::countr_zero(kind)];
  if (added)
    n++;
  else if (n > 0)
    n--;
  uint8_t& kinds = addr_filter_.kinds[slot];
  const uint8_t want = n ? kinds | kind : kinds & ~kind;
  if (want == kinds) return false;
  kinds = want;
  return true;
}

void Datapath::write_addr_filter() {
  uint32_t zero = 0;
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.addr_filter), &zero, &addr_filter_, BPF_ANY),
        "writing the address filter");
}

void Datapath::derive_from_adopted_maps() {
  for (const auto& k : hash_keys<ikelb_vip_key>(bpf_map__fd(skel_->maps.vips))) {
    tally_address(k.addr, k.family, IKELB_ADDR_VIP, true);
    if (auto v = lookup<ikelb_vip_value>(bpf_map__fd(skel_->maps.vips), &k)) {
      services_[ServiceKey{IpAddress{k.family, k.addr}, k.proto, ntohs(k.port)}] = v->vs_id;
      unpublished_vips_.insert(ikelb_addr_slot(&k.addr, k.family));
    }
  }
  const int reverse_fd = bpf_map__fd(skel_->maps.reverse);
  std::vector<std::pair<IpAddress, ikelb_reverse_value>> backends;
  for (const auto& k : hash_keys<ikelb_reverse_key>(reverse_fd)) {
    tally_address(k.addr, k.family, IKELB_ADDR_BACKEND, true);
    if (auto v = lookup<ikelb_reverse_value>(reverse_fd, &k))
      backends.emplace_back(IpAddress{k.family, k.addr}, *v);
  }
  for (const auto& k : hash_keys<ikelb_local_key>(bpf_map__fd(skel_->maps.local_addrs)))
    tally_address(k.addr, k.family, IKELB_ADDR_LOCAL, true);
  write_addr_filter();
  for (const auto& [backend, rev] : backends) write_reply(backend, reply_of(rev, backend.family));
  flush();
}

void Datapath::set_settings(const ikelb_settings& s) {
  uint32_t zero = 0;
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.settings), &zero, &s, BPF_ANY),
        "writing settings");
}

void Datapath::set_edge(const ikelb_edge_settings& e) {
  uint32_t zero = 0;
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.edge), &zero, &e, BPF_ANY),
        "writing edge settings");
}

void Datapath::set_init_limit(uint32_t vs_id, const ikelb_init_limit& limit) {
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.init_limits), &vs_id, &limit, BPF_ANY),
        "writing the IKE_SA_INIT limit of virtual server " + std::to_string(vs_id));
}

// --- SPI routing (issue 15) ---

void Datapath::set_spi_routing(uint32_t vs_id, const ikelb_spi_routing& routing) {
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.spi_routing), &vs_id, &routing, BPF_ANY),
        "writing the SPI routing of virtual server " + std::to_string(vs_id));
}

void Datapath::set_spi_label(uint32_t vs_id, uint32_t id, uint32_t backend_id) {
  ikelb_spi_label_key key{.vs_id = vs_id, .id = id};
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.spi_labels), &key, &backend_id, BPF_ANY),
        "writing SPI label " + std::to_string(id) + " of virtual server " + std::to_string(vs_id));
}

void Datapath::delete_spi_label(uint32_t vs_id, uint32_t id) {
  ikelb_spi_label_key key{.vs_id = vs_id, .id = id};
  check_delete(
      bpf_map_delete_elem(bpf_map__fd(skel_->maps.spi_labels), &key),
      "deleting SPI label " + std::to_string(id) + " of virtual server " + std::to_string(vs_id));
}

MapSnapshot Datapath::snapshot() const {
  MapSnapshot snap;
  int vs_fd = bpf_map__fd(skel_->maps.vs);
  for (uint32_t id : hash_keys<uint32_t>(vs_fd))
    if (auto v = lookup<ikelb_vs>(vs_fd, &id)) snap.vs[id] = *v;
  for (uint32_t id = 0; id < IKELB_MAX_VS; id++) {
    auto m = lookup<ikelb_vs_meta>(bpf_map__fd(skel_->maps.vs_meta), &id);
    if (m && m->name[0]) snap.vs_meta[id] = *m;
  }
  for (uint32_t id = 0; id < IKELB_MAX_BACKENDS; id++) {
    auto b = lookup<ikelb_backend>(bpf_map__fd(skel_->maps.backends), &id);
    if (b && b->state != IKELB_BACKEND_UNUSED) snap.backends[id] = *b;
    auto m = lookup<ikelb_backend_meta>(bpf_map__fd(skel_->maps.backend_meta), &id);
    if (m && m->name[0]) snap.backend_meta[id] = *m;
  }
  int vips_fd = bpf_map__fd(skel_->maps.vips);
  for (const ikelb_vip_key& k : hash_keys<ikelb_vip_key>(vips_fd)) {
    auto v = lookup<ikelb_vip_value>(vips_fd, &k);
    if (!v) continue;
    snap.services[ServiceKey{IpAddress{k.family, k.addr}, k.proto, ntohs(k.port)}] = v->vs_id;
  }
  for (const ikelb_reverse_key& k : hash_keys<ikelb_reverse_key>(bpf_map__fd(skel_->maps.reverse)))
    snap.reverse.push_back(IpAddress{k.family, k.addr});
  uint32_t zero = 0;
  if (auto s = lookup<ikelb_settings>(bpf_map__fd(skel_->maps.settings), &zero)) snap.settings = *s;
  for (uint32_t id = 0; id < IKELB_MAX_VS; id++) {
    auto r = lookup<ikelb_spi_routing>(bpf_map__fd(skel_->maps.spi_routing), &id);
    if (r && (r->flags || r->ike_mask || r->esp_mask)) snap.spi_routing[id] = *r;
  }
  int labels_fd = bpf_map__fd(skel_->maps.spi_labels);
  for (const ikelb_spi_label_key& k : hash_keys<ikelb_spi_label_key>(labels_fd))
    if (auto b = lookup<uint32_t>(labels_fd, &k)) snap.spi_labels[{k.vs_id, k.id}] = *b;
  return snap;
}

// --- XDP attachment -----------------------------------------------------------------------

namespace {

std::string prog_tag(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) return "?";
  char hex[2 * BPF_TAG_SIZE + 1] = {};
  for (int i = 0; i < BPF_TAG_SIZE; i++) std::snprintf(hex + 2 * i, 3, "%02x", info.tag[i]);
  return hex;
}

uint32_t ifindex_of(const std::string& ifname) {
  uint32_t ifindex = if_nametoindex(ifname.c_str());
  if (!ifindex) fail(errno, "interface " + ifname);
  return ifindex;
}

}  // namespace

std::string Datapath::attach(const std::string& ifname, bool generic) {
  uint32_t ifindex = ifindex_of(ifname);
  std::string path = pin_dir_.empty() ? "" : pin_dir_ + "/link_" + ifname;
  std::string ours = prog_tag(prog_fd());
  std::string what;
  if (!path.empty() && exists(path)) {
    int link = bpf_obj_get(path.c_str());
    if (link < 0) fail(errno, "opening pinned link " + path);
    link_fds_[ifname] = link;
    bpf_link_info info{};
    uint32_t len = sizeof(info);
    check(bpf_obj_get_info_by_fd(link, &info, &len), "reading link info of " + path);
    int cur = bpf_prog_get_fd_by_id(info.prog_id);
    std::string theirs = cur >= 0 ? prog_tag(cur) : "?";
    if (cur >= 0) close(cur);
    if (info.type == BPF_LINK_TYPE_XDP && info.xdp.ifindex != ifindex)
      fail(EINVAL, "pinned link " + path + " belongs to another interface (ifindex " +
                       std::to_string(info.xdp.ifindex) + ")");
    // Replaced even when it is the same code (the same tag): the program in the link reads the
    // derived maps of the agent that loaded it (address filter, replies, records: never pinned),
    // which no one updates any more. This agent's program reads the adopted maps and its own
    // derived maps, rebuilt from them before this point; the swap is atomic.
    check(bpf_link_update(link, prog_fd(), nullptr), "replacing the program on " + ifname);
    what = "adopted the XDP link on " + ifname + " and replaced program " + theirs +
           (theirs == ours ? " with this agent's copy of it" : " with " + ours);
  } else {
    LIBBPF_OPTS(bpf_link_create_opts, opts,
                .flags = generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE);
    int link = bpf_link_create(prog_fd(), static_cast<int>(ifindex), BPF_XDP, &opts);
    if (link < 0)
      fail(errno, std::string("attaching XDP (") + (generic ? "generic" : "native") + ") to " +
                      ifname +
                      (generic ? ""
                               : "; set \"xdp_mode\": \"generic\" if the driver lacks "
                                 "native XDP"));
    link_fds_[ifname] = link;
    if (!path.empty()) check(bpf_obj_pin(link, path.c_str()), "pinning link " + path);
    what = std::string("attached XDP (") + (generic ? "generic" : "native") + ") to " + ifname +
           ", program " + ours;
  }
  add_tx_port(ifindex);
  return what;
}

bool Datapath::detach(const std::string& ifname) {
  auto it = link_fds_.find(ifname);
  bool found = it != link_fds_.end();
  if (!pin_dir_.empty()) {
    std::string path = pin_dir_ + "/link_" + ifname;
    if (exists(path)) {
      found = true;
      if (unlink(path.c_str()) != 0) fail(errno, "removing " + path);
    }
  }
  if (it != link_fds_.end()) {
    bpf_link_detach(it->second);
    close(it->second);
    link_fds_.erase(it);
  }
  if (uint32_t ifindex = if_nametoindex(ifname.c_str()))
    bpf_map_delete_elem(bpf_map__fd(skel_->maps.tx_ports), &ifindex);
  return found;
}

std::vector<std::string> Datapath::attached() const {
  std::vector<std::string> out;
  for (const auto& [ifname, fd] : link_fds_) out.push_back(ifname);
  return out;
}

std::vector<std::string> Datapath::link_problems(const std::vector<std::string>& ifnames) const {
  std::vector<std::string> out;
  for (const auto& ifname : ifnames) {
    auto it = link_fds_.find(ifname);
    if (it == link_fds_.end()) {
      out.push_back("XDP is not attached to " + ifname);
      continue;
    }
    bpf_link_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(it->second, &info, &len) != 0) {
      out.push_back("cannot read the XDP link of " + ifname + ": " + std::strerror(errno));
      continue;
    }
    uint32_t ifindex = if_nametoindex(ifname.c_str());
    if (info.xdp.ifindex == 0)
      out.push_back("the XDP link of " + ifname + " lost its interface (deleted?)");
    else if (info.xdp.ifindex != ifindex)
      out.push_back(ifname + " is not the interface XDP is attached to (ifindex " +
                    std::to_string(ifindex) + ", link on " + std::to_string(info.xdp.ifindex) +
                    ")");
  }
  return out;
}

std::vector<std::string> Datapath::teardown(const std::string& pin_dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  if (!std::filesystem::is_directory(pin_dir, ec)) return removed;
  // Links first, so nothing forwards with half of its maps gone.
  std::vector<std::filesystem::path> links, others;
  for (const auto& e : std::filesystem::directory_iterator(pin_dir, ec))
    (e.path().filename().string().starts_with("link_") ? links : others).push_back(e.path());
  for (const auto* group : {&links, &others})
    for (const auto& p : *group) {
      if (group == &links) {
        int link = bpf_obj_get(p.c_str());
        if (link >= 0) {
          bpf_link_detach(link);
          close(link);
        }
      }
      if (unlink(p.c_str()) != 0) fail(errno, "removing " + p.string());
      removed.push_back(p.filename().string());
    }
  if (rmdir(pin_dir.c_str()) != 0 && errno != ENOENT) fail(errno, "removing " + pin_dir);
  return removed;
}

namespace {

bool on_bpffs(const std::string& path) {
  struct statfs fs {};
  return statfs(path.c_str(), &fs) == 0 && static_cast<uint64_t>(fs.f_type) == BPF_FS_MAGIC;
}

}  // namespace

std::string Datapath::mount_bpffs(const std::string& pin_dir) {
  const std::string parent = std::filesystem::path(pin_dir).parent_path().string();
  if (on_bpffs(pin_dir)) return pin_dir + " is on a bpf filesystem already";
  if (on_bpffs(parent)) return parent + " is a bpf filesystem already";
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) fail(ec.value(), "creating " + parent);
  if (mount("bpf", parent.c_str(), "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") != 0)
    fail(errno, "mounting a bpf filesystem on " + parent + " (needs CAP_SYS_ADMIN)");
  return "mounted a bpf filesystem on " + parent;
}

static ikelb_affinity_key affinity_key(uint32_t vs_id, const IpAddress& client) {
  ikelb_affinity_key key{};
  key.vs_id = vs_id;
  key.family = client.family;
  key.client = client.addr;
  return key;
}

void Datapath::set_affinity(uint32_t vs_id, const IpAddress& client,
                            const ikelb_affinity_value& value) {
  auto key = affinity_key(vs_id, client);
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.affinity), &key, &value, BPF_ANY),
        "writing affinity entry for " + client.str());
}

bool Datapath::add_affinity(uint32_t vs_id, const IpAddress& client,
                            const ikelb_affinity_value& value) {
  auto key = affinity_key(vs_id, client);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.affinity), &key, &value, BPF_NOEXIST) == 0)
    return true;
  if (errno == EEXIST) return false;
  fail(errno, "adding affinity entry for " + client.str());
}

std::optional<ikelb_affinity_value> Datapath::affinity(uint32_t vs_id,
                                                       const IpAddress& client) const {
  auto key = affinity_key(vs_id, client);
  ikelb_affinity_value value{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.affinity), &key, &value) != 0) {
    if (errno == ENOENT) return std::nullopt;
    fail(errno, "reading affinity entry for " + client.str());
  }
  return value;
}

std::optional<ikelb_backend> Datapath::backend(uint32_t id) const {
  ikelb_backend b{};
  if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.backends), &id, &b) != 0) return std::nullopt;
  return b;
}

// Per-CPU values are laid out one per possible CPU, each rounded up to 8 bytes. All counter
// structs here are made of u64 only, so summing is field-wise u64 addition.
template <typename T>
T Datapath::sum_percpu(int fd, uint32_t key) const {
  static_assert(sizeof(T) % sizeof(uint64_t) == 0);
  constexpr size_t kWords = sizeof(T) / sizeof(uint64_t);
  std::vector<uint64_t> raw(kWords * ncpus_);
  check(bpf_map_lookup_elem(fd, &key, raw.data()), "reading per-CPU counters");
  std::array<uint64_t, kWords> sum{};
  for (unsigned cpu = 0; cpu < ncpus_; cpu++)
    for (size_t w = 0; w < kWords; w++) sum[w] += raw[cpu * kWords + w];
  T out;
  std::memcpy(&out, sum.data(), sizeof(T));
  return out;
}

std::array<uint64_t, IKELB_OUTCOME_MAX> Datapath::outcomes() const {
  std::array<uint64_t, IKELB_OUTCOME_MAX> out{};
  for (uint32_t i = 0; i < IKELB_OUTCOME_MAX; i++)
    out[i] = sum_percpu<uint64_t>(bpf_map__fd(skel_->maps.outcomes), i);
  return out;
}

std::array<uint64_t, IKELB_EVENT_MAX> Datapath::events() const {
  std::array<uint64_t, IKELB_EVENT_MAX> out{};
  for (uint32_t i = 0; i < IKELB_EVENT_MAX; i++)
    out[i] = sum_percpu<uint64_t>(bpf_map__fd(skel_->maps.events), i);
  return out;
}

ikelb_traffic Datapath::vs_traffic(uint32_t vs_id) const {
  return sum_percpu<ikelb_traffic>(bpf_map__fd(skel_->maps.vs_stats), vs_id);
}

ikelb_backend_stats Datapath::backend_stats(uint32_t id) const {
  return sum_percpu<ikelb_backend_stats>(bpf_map__fd(skel_->maps.backend_stats), id);
}

ikelb_vs_edge_stats Datapath::vs_edge_stats(uint32_t vs_id) const {
  return sum_percpu<ikelb_vs_edge_stats>(bpf_map__fd(skel_->maps.vs_edge_stats), vs_id);
}

uint64_t Datapath::spi_owner_entries() const {
  constexpr uint32_t kBatch = 4096;
  std::vector<ikelb_spi_owner_key> keys(kBatch);
  std::vector<ikelb_spi_owner> values(kBatch);
  uint8_t in[8] = {}, out[8] = {};  // the next bucket index
  uint64_t total = 0;
  for (bool first = true;; first = false) {
    uint32_t count = kBatch;
    int rc = bpf_map_lookup_batch(bpf_map__fd(skel_->maps.spi_owners), first ? nullptr : in, out,
                                  keys.data(), values.data(), &count, nullptr);
    int err = rc < 0 ? errno : 0;
    if (rc < 0 && err != ENOENT) fail(err, "walking the SPI owner map");
    total += count;
    if (err == ENOENT) return total;
    std::memcpy(in, out, sizeof(in));
  }
}

uint32_t Datapath::affinity_capacity() const {
  return bpf_map__max_entries(skel_->maps.affinity);
}

namespace {

// One bpf_map_lookup_batch step over a hash map. Batches are whole buckets; the token is the
// next bucket index (a u32).
template <typename K, typename V, typename Visit>
bool scan_batch(int fd, Datapath::AffinityCursor& cursor, uint32_t max, const Visit& visit,
                const char* what) {
  std::vector<K> keys(max);
  std::vector<V> values(max);
  cursor.token.resize(8);
  uint32_t count = max;
  std::vector<uint8_t> out(8);
  int rc = bpf_map_lookup_batch(fd, cursor.started ? cursor.token.data() : nullptr, out.data(),
                                keys.data(), values.data(), &count, nullptr);
  int err = rc < 0 ? errno : 0;
  if (rc < 0 && err != ENOENT) fail(err, what);
  for (uint32_t i = 0; i < count; i++) visit(keys[i], values[i]);
  cursor.token = out;
  cursor.started = true;
  return err != ENOENT;
}

}  // namespace

bool Datapath::scan_affinity(AffinityCursor& cursor, uint32_t max,
                             const std::function<void(const ikelb_affinity_key&,
                                                      const ikelb_affinity_value&)>& visit) const {
  return scan_batch<ikelb_affinity_key, ikelb_affinity_value>(
      bpf_map__fd(skel_->maps.affinity), cursor, max, visit, "walking the affinity map");
}

bool Datapath::scan_spi_owners(
    AffinityCursor& cursor, uint32_t max,
    const std::function<void(const ikelb_spi_owner_key&, const ikelb_spi_owner&)>& visit) const {
  return scan_batch<ikelb_spi_owner_key, ikelb_spi_owner>(
      bpf_map__fd(skel_->maps.spi_owners), cursor, max, visit, "walking the spi_owners map");
}

bool Datapath::add_spi_owner(const ikelb_spi_owner_key& key, const ikelb_spi_owner& owner) {
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.spi_owners), &key, &owner, BPF_NOEXIST) == 0)
    return true;
  if (errno == EEXIST) return false;
  fail(errno, "adding a learned SPI owner");
}

}  // namespace ikelb
