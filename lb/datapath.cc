#include "datapath.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
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

Datapath::Datapath(const Options& options) {
  int ncpus = libbpf_num_possible_cpus();
  if (ncpus <= 0) fail(-ncpus, "counting possible CPUs");
  ncpus_ = static_cast<unsigned>(ncpus);

  skel_.reset(ikelb_bpf__open());
  if (!skel_) fail(errno, "opening the ikelb BPF object");
  check(bpf_map__set_max_entries(skel_->maps.maglev, options.table_slots), "sizing the maglev map");
  check(bpf_map__set_max_entries(skel_->maps.affinity, options.affinity_entries),
        "sizing the affinity map");
  check(ikelb_bpf__load(skel_.get()),
        "loading the ikelb BPF object (needs CAP_BPF, CAP_NET_ADMIN)");
}

Datapath::~Datapath() = default;

int Datapath::prog_fd() const {
  return bpf_program__fd(skel_->progs.ikelb_xdp);
}

int Datapath::map_fd(std::string_view name) const {
  bpf_map* m = bpf_object__find_map_by_name(skel_->obj, std::string(name).c_str());
  if (!m) fail(ENOENT, "no map named " + std::string(name));
  return bpf_map__fd(m);
}

void Datapath::set_service(const IpAddress& vip, uint8_t proto, uint16_t port, uint32_t vs_id) {
  ikelb_vip_key key{};
  key.addr = vip.addr;
  key.family = vip.family;
  key.proto = proto;
  key.port = htons(port);
  ikelb_vip_value value{.vs_id = vs_id, .pad = 0};
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.vips), &key, &value, BPF_ANY),
        "writing service " + vip.str() + "/" + std::to_string(proto) + "/" + std::to_string(port));
}

void Datapath::set_virtual_server(uint32_t vs_id, const ikelb_vs& v) {
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.vs), &vs_id, &v, BPF_ANY),
        "writing virtual server " + std::to_string(vs_id));
}

void Datapath::write_table(uint32_t base, std::span<const uint32_t> slots) {
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
  ikelb_reverse_key key{};
  key.addr = backend.addr;
  key.family = backend.family;
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.reverse), &key, &value, BPF_ANY),
        "writing reverse entry for " + backend.str());
}

void Datapath::add_tx_port(uint32_t ifindex) {
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.tx_ports), &ifindex, &ifindex, BPF_ANY),
        "adding tx port " + std::to_string(ifindex));
}

void Datapath::set_settings(const ikelb_settings& s) {
  uint32_t zero = 0;
  check(bpf_map_update_elem(bpf_map__fd(skel_->maps.settings), &zero, &s, BPF_ANY),
        "writing settings");
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

}  // namespace ikelb
