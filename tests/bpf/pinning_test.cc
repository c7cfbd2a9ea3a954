// Pinned state: a second Datapath on the same pin directory adopts the maps (affinity included)
// and the XDP link instead of recreating them; teardown detaches and removes everything.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

#include "datapath.h"
#include "packet.h"
#include "sandbox.h"
#include "testbed.h"

namespace ikelb::test {
namespace {

// A bpffs of this process alone, over /sys/fs/bpf in a private mount namespace (as the Sandbox
// gives it a network namespace of its own): it goes away with the process, even one that is
// killed, and leaves no directory behind.
struct BpffsMount {
  std::string dir = "/sys/fs/bpf";
  BpffsMount() {
    if (unshare(CLONE_NEWNS) != 0)
      throw std::system_error(errno, std::generic_category(), "unshare(CLONE_NEWNS)");
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      throw std::system_error(errno, std::generic_category(), "making mounts private");
    if (mount("bpf", dir.c_str(), "bpf", 0, nullptr) != 0)
      throw std::system_error(errno, std::generic_category(), "mount bpffs");
  }
  ~BpffsMount() { umount2(dir.c_str(), MNT_DETACH); }
};

uint32_t xdp_prog_id(const char* ifname) {
  uint32_t id = 0;
  bpf_xdp_query_id(static_cast<int>(if_nametoindex(ifname)), 0, &id);
  return id;
}

Datapath::Options pinned(const std::string& dir) {
  return {.table_slots = IKELB_DEFAULT_TABLE_SLOTS, .affinity_entries = 4096, .pin_dir = dir};
}

TEST(Pinning, RestartAdoptsMapsAndLinkThenTeardownRemovesThem) {
  [[maybe_unused]] Sandbox sandbox = Sandbox::create();
  BpffsMount fs;
  const std::string pins = fs.dir + "/ikelb";
  const IpAddress client = IpAddress::must_parse("100.64.0.7");
  uint32_t first_prog = 0;
  {
    Datapath dp(pinned(pins));
    EXPECT_TRUE(dp.adopted_maps().empty());
    std::string what = dp.attach("gw0", false);
    EXPECT_TRUE(what.starts_with("attached XDP (native) to gw0, program ")) << what;
    dp.set_affinity(3, client, {.backend_id = 42, .flags = 0, .last_seen_ns = 1});
    first_prog = xdp_prog_id("gw0");
    ASSERT_NE(first_prog, 0u);
  }
  // The first "agent" is gone; its pins keep the program attached.
  EXPECT_EQ(xdp_prog_id("gw0"), first_prog);
  EXPECT_TRUE(std::filesystem::exists(pins + "/link_gw0"));
  {
    Datapath dp(pinned(pins));
    EXPECT_EQ(dp.adopted_maps().size(), 29u);
    auto a = dp.affinity(3, client);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->backend_id, 42u);
    // The peer sync's insert never replaces an entry (the data path may have created one).
    EXPECT_FALSE(dp.add_affinity(3, client, {.backend_id = 7, .flags = 0, .last_seen_ns = 2}));
    EXPECT_EQ(dp.affinity(3, client)->backend_id, 42u);
    const IpAddress other = IpAddress::must_parse("100.64.0.8");
    EXPECT_TRUE(dp.add_affinity(3, other, {.backend_id = 7, .flags = 0, .last_seen_ns = 2}));
    EXPECT_EQ(dp.affinity(3, other)->backend_id, 7u);
    ikelb_spi_owner_key spi{};
    spi.spi = 0xc0000001u;
    spi.vs_id = 3;
    spi.kind = IKELB_SPI_ESP;
    EXPECT_TRUE(dp.add_spi_owner(spi, {.backend_id = 5, .pad = 0, .last_seen_ns = 1}));
    EXPECT_FALSE(dp.add_spi_owner(spi, {.backend_id = 6, .pad = 0, .last_seen_ns = 2}));
    Datapath::AffinityCursor cursor;
    std::vector<uint32_t> owners;
    while (
        dp.scan_spi_owners(cursor, 64, [&](const ikelb_spi_owner_key& k, const ikelb_spi_owner& v) {
          if (k.spi == spi.spi && k.vs_id == 3) owners.push_back(v.backend_id);
        })) {
    }
    EXPECT_EQ(owners, std::vector<uint32_t>{5});
    std::string what = dp.attach("gw0", false);
    EXPECT_TRUE(what.starts_with("adopted the XDP link on gw0")) << what;
    EXPECT_NE(xdp_prog_id("gw0"), 0u);
  }
  auto removed = Datapath::teardown(pins);
  EXPECT_EQ(removed.size(), 30u);  // 29 maps and one link
  EXPECT_EQ(xdp_prog_id("gw0"), 0u);
  EXPECT_FALSE(std::filesystem::exists(pins));
  {
    Datapath fresh(pinned(pins));
    EXPECT_TRUE(fresh.adopted_maps().empty());
    EXPECT_FALSE(fresh.affinity(3, client));
  }
  Datapath::teardown(pins);
}

TEST(Pinning, AChangedProgramIsReplacedInTheAdoptedLink) {
  [[maybe_unused]] Sandbox sandbox = Sandbox::create();
  BpffsMount fs;
  const std::string pins = fs.dir + "/ikelb";
  {
    Datapath dp(pinned(pins));
    dp.attach("gw0", false);
  }
  // Stand-in for the previous version's program: XDP_PASS, swapped into the pinned link.
  bpf_insn insns[2] = {};
  insns[0].code = 0xb7;  // r0 = XDP_PASS
  insns[0].imm = XDP_PASS;
  insns[1].code = 0x95;  // exit
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_XDP);
  int old_prog = bpf_prog_load(BPF_PROG_TYPE_XDP, "old", "GPL", insns, 2, &opts);
  ASSERT_GE(old_prog, 0);
  int link = bpf_obj_get((pins + "/link_gw0").c_str());
  ASSERT_GE(link, 0);
  ASSERT_EQ(bpf_link_update(link, old_prog, nullptr), 0);
  uint32_t old_id = xdp_prog_id("gw0");
  {
    Datapath dp(pinned(pins));
    std::string what = dp.attach("gw0", false);
    EXPECT_NE(what.find("and replaced program"), std::string::npos) << what;
    EXPECT_NE(xdp_prog_id("gw0"), old_id);
  }
  close(link);
  close(old_prog);
  Datapath::teardown(pins);
  EXPECT_EQ(xdp_prog_id("gw0"), 0u);
}

// An older version pinned an outcome counter array with fewer slots than this one counts: it is
// replaced (counters restart from zero) instead of adopted, so every new outcome is counted.
TEST(Pinning, ACounterArrayTooSmallForNewOutcomesIsReplaced) {
  [[maybe_unused]] Sandbox sandbox = Sandbox::create();
  BpffsMount fs;
  const std::string pins = fs.dir + "/ikelb";
  std::filesystem::create_directories(pins);
  int old = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "outcomes", 4, 8, 15, nullptr);
  ASSERT_GE(old, 0);
  ASSERT_EQ(bpf_obj_pin(old, (pins + "/outcomes").c_str()), 0);
  close(old);
  {
    Datapath dp(pinned(pins));
    bool noted = false;
    for (const auto& n : dp.notes())
      noted |= n == "map outcomes starts from zero: this version counts more kinds";
    EXPECT_TRUE(noted);
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    ASSERT_EQ(bpf_obj_get_info_by_fd(dp.map_fd(IKELB_MAP_OUTCOMES), &info, &len), 0);
    EXPECT_EQ(info.max_entries, uint32_t{IKELB_COUNTER_SLOTS});
    int pinned_fd = bpf_obj_get((pins + "/outcomes").c_str());
    ASSERT_GE(pinned_fd, 0);
    bpf_map_info pinned_info{};
    len = sizeof(pinned_info);
    ASSERT_EQ(bpf_obj_get_info_by_fd(pinned_fd, &pinned_info, &len), 0);
    EXPECT_EQ(pinned_info.id, info.id);  // the new map took the pin
    close(pinned_fd);
  }
  Datapath::teardown(pins);
}

// The address filter is derived from vips, reverse and local_addrs: never pinned, and rebuilt from
// the adopted maps before a new program can read it. An empty filter would hide every VIP from
// the new program: the upgrade would stop forwarding until the next configuration change.
TEST(Pinning, TheAddressFilterIsRebuiltFromTheAdoptedMaps) {
  [[maybe_unused]] Sandbox sandbox = Sandbox::create();
  BpffsMount fs;
  const std::string pins = fs.dir + "/ikelb";
  const IpAddress vip = IpAddress::must_parse("203.0.113.77");
  const IpAddress gw = IpAddress::must_parse("fd00::77");
  const IpAddress local = IpAddress::must_parse("10.9.9.9");
  auto kinds = [](const Datapath& dp, const IpAddress& a) {
    ikelb_addr_filter f{};
    const uint32_t zero = 0;
    EXPECT_EQ(bpf_map_lookup_elem(dp.map_fd(IKELB_MAP_ADDR_FILTER), &zero, &f), 0);
    return f.kinds[ikelb_addr_slot(&a.addr, a.family)];
  };
  {
    Datapath dp(pinned(pins));
    dp.set_service(vip, IPPROTO_UDP, 4500, 2);
    dp.set_reverse(gw, {.vip = vip.addr, .vs_id = 2, .backend_id = 9});
    dp.set_local_addresses({local});
    EXPECT_EQ(kinds(dp, vip) & IKELB_ADDR_VIP, IKELB_ADDR_VIP);
  }
  EXPECT_FALSE(std::filesystem::exists(pins + "/" IKELB_MAP_ADDR_FILTER));
  {
    Datapath dp(pinned(pins));
    EXPECT_EQ(std::count(dp.adopted_maps().begin(), dp.adopted_maps().end(), IKELB_MAP_ADDR_FILTER),
              0);
    EXPECT_EQ(kinds(dp, vip) & IKELB_ADDR_VIP, IKELB_ADDR_VIP);
    EXPECT_EQ(kinds(dp, gw) & IKELB_ADDR_BACKEND, IKELB_ADDR_BACKEND);
    EXPECT_EQ(kinds(dp, local) & IKELB_ADDR_LOCAL, IKELB_ADDR_LOCAL);
    // Removing them clears their bits (a fresh address in none of the three maps has none).
    dp.delete_service({vip, IPPROTO_UDP, 4500});
    dp.delete_reverse(gw);
    dp.set_local_addresses({});
    for (const IpAddress& a : {vip, gw, local}) EXPECT_EQ(kinds(dp, a), 0) << a.str();
  }
  Datapath::teardown(pins);
}

// replies is derived from reverse and vips the same way: never pinned, rebuilt from the adopted
// maps. Without it the new program would translate no reply until the next configuration change.
TEST(Pinning, TheRepliesAreRebuiltFromTheAdoptedMaps) {
  [[maybe_unused]] Sandbox sandbox = Sandbox::create();
  BpffsMount fs;
  const std::string pins = fs.dir + "/ikelb";
  const IpAddress vip = IpAddress::must_parse("203.0.113.77");
  const IpAddress gw = IpAddress::must_parse("10.1.2.3");
  const ikelb_reverse_value rev{.vip = vip.addr, .vs_id = 2, .backend_id = 9};
  ikelb_reverse_key key{};
  key.addr = gw.addr;
  key.family = gw.family;
  {
    Datapath dp(pinned(pins));
    for (uint16_t port : {500, 4500, 0}) dp.set_service(vip, IPPROTO_UDP, port, 2);
    dp.set_service(vip, IPPROTO_ESP, 0, 2);
    dp.set_reverse(gw, rev);
  }
  EXPECT_FALSE(std::filesystem::exists(pins + "/" IKELB_MAP_REPLIES));
  EXPECT_FALSE(std::filesystem::exists(pins + "/" IKELB_MAP_REPLY_RECORDS));
  {
    Datapath dp(pinned(pins));
    EXPECT_EQ(std::count(dp.adopted_maps().begin(), dp.adopted_maps().end(), IKELB_MAP_REPLIES), 0);
    ikelb_reply r{};
    ASSERT_EQ(bpf_map_lookup_elem(dp.map_fd(IKELB_MAP_REPLIES), &key, &r), 0);
    EXPECT_EQ(std::memcmp(&r.rev, &rev, sizeof(rev)), 0);
    EXPECT_EQ(ntohs(r.udp_ports[0]), 500);
    EXPECT_EQ(ntohs(r.udp_ports[1]), 4500);
    EXPECT_EQ(r.udp_ports[2], 0);
    EXPECT_EQ(r.esp, 1);
    EXPECT_EQ(r.more, 0);
    // The backend's slot record (never pinned either) holds the same entry, and is read.
    const uint32_t slot = ikelb_addr_slot(&gw.addr, gw.family), zero = 0;
    ikelb_reply_record rec{};
    ASSERT_EQ(bpf_map_lookup_elem(dp.map_fd(IKELB_MAP_REPLY_RECORDS), &slot, &rec), 0);
    EXPECT_EQ(std::memcmp(&rec.addr, &gw.addr, sizeof(rec.addr)), 0);
    EXPECT_EQ(std::memcmp(&rec.reply, &r, sizeof(r)), 0);
    ikelb_addr_filter f{};
    ASSERT_EQ(bpf_map_lookup_elem(dp.map_fd(IKELB_MAP_ADDR_FILTER), &zero, &f), 0);
    EXPECT_EQ(f.kinds[slot], IKELB_ADDR_BACKEND | IKELB_ADDR_REPLY_RECORD);
    // And the adopted services are known: removing one rewrites the entry.
    dp.delete_service({vip, IPPROTO_UDP, 500});
    ASSERT_EQ(bpf_map_lookup_elem(dp.map_fd(IKELB_MAP_REPLIES), &key, &r), 0);
    EXPECT_EQ(ntohs(r.udp_ports[0]), 4500);
    EXPECT_EQ(r.udp_ports[1], 0);
    dp.delete_reverse(gw);
    EXPECT_NE(bpf_map_lookup_elem(dp.map_fd(IKELB_MAP_REPLIES), &key, &r), 0);
  }
  Datapath::teardown(pins);
}

TEST(Pinning, TheVipRecordsAreRebuiltFromTheAdoptedMaps) {
  [[maybe_unused]] Sandbox sandbox = Sandbox::create();
  BpffsMount fs;
  const std::string pins = fs.dir + "/ikelb";
  const IpAddress vip = IpAddress::must_parse("203.0.113.78");
  const uint32_t slot = ikelb_addr_slot(&vip.addr, vip.family);
  {
    Datapath dp(pinned(pins));
    dp.set_service(vip, IPPROTO_UDP, 4500, 3);
    dp.set_service(vip, IPPROTO_ESP, 0, 3);
    dp.flush();
  }
  EXPECT_FALSE(std::filesystem::exists(pins + "/" IKELB_MAP_VIP_RECORDS));
  {
    Datapath dp(pinned(pins));
    EXPECT_EQ(std::count(dp.adopted_maps().begin(), dp.adopted_maps().end(), IKELB_MAP_VIP_RECORDS),
              0);
    ikelb_vip_record r{};
    ASSERT_EQ(bpf_map_lookup_elem(dp.map_fd(IKELB_MAP_VIP_RECORDS), &slot, &r), 0);
    EXPECT_EQ(r.family, vip.family);
    EXPECT_EQ(std::memcmp(&r.addr, &vip.addr, sizeof(r.addr)), 0);
    ASSERT_EQ(r.count, 2);
    EXPECT_EQ(r.services[0].proto, IPPROTO_UDP);
    EXPECT_EQ(ntohs(r.services[0].port), 4500);
    EXPECT_EQ(r.services[0].vs_id, 3u);
    EXPECT_EQ(r.services[1].proto, IPPROTO_ESP);
    EXPECT_EQ(r.services[1].vs_id, 3u);
    const uint32_t zero = 0;
    ikelb_addr_filter f{};
    ASSERT_EQ(bpf_map_lookup_elem(dp.map_fd(IKELB_MAP_ADDR_FILTER), &zero, &f), 0);
    EXPECT_EQ(f.kinds[slot], IKELB_ADDR_VIP | IKELB_ADDR_RECORD);
    // The adopted services are known: removing one takes the record out of use at once.
    dp.delete_service({vip, IPPROTO_ESP, 0});
    ASSERT_EQ(bpf_map_lookup_elem(dp.map_fd(IKELB_MAP_ADDR_FILTER), &zero, &f), 0);
    EXPECT_EQ(f.kinds[slot], IKELB_ADDR_VIP);
  }
  Datapath::teardown(pins);
}

// The id of every map the program `prog_id` reads, by name.
std::map<std::string, uint32_t> maps_of_program(uint32_t prog_id) {
  std::map<std::string, uint32_t> maps;
  const int prog = bpf_prog_get_fd_by_id(prog_id);
  if (prog < 0) throw std::system_error(errno, std::generic_category(), "opening the program");
  uint32_t ids[64] = {};
  bpf_prog_info info{};
  info.nr_map_ids = 64;
  info.map_ids = reinterpret_cast<uint64_t>(ids);
  uint32_t len = sizeof(info);
  const int rc = bpf_obj_get_info_by_fd(prog, &info, &len);
  close(prog);
  if (rc != 0) throw std::system_error(errno, std::generic_category(), "reading the program");
  for (uint32_t i = 0; i < std::min(info.nr_map_ids, 64u); i++) {
    const int fd = bpf_map_get_fd_by_id(ids[i]);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "opening a map");
    bpf_map_info m{};
    uint32_t mlen = sizeof(m);
    const int mrc = bpf_obj_get_info_by_fd(fd, &m, &mlen);
    close(fd);
    if (mrc != 0) throw std::system_error(errno, std::generic_category(), "reading a map");
    maps[m.name] = m.id;
  }
  return maps;
}

// A restarted agent runs the same program, but the maps it derives (address filter, replies,
// records) are new, never pinned: the program left in the adopted link reads its predecessor's,
// which no one updates any more. The restarted agent's program must take the link, or a VIP or
// gateway configured after the restart is never seen by the data path.
TEST(Pinning, ARestartedAgentsConfigurationReachesTheAttachedProgram) {
  Sandbox sandbox = Sandbox::create();
  BpffsMount fs;
  const std::string pins = fs.dir + "/ikelb";
  {
    Datapath dp(pinned(pins));
    dp.attach("cli0", false);
  }
  Datapath dp(pinned(pins));
  const std::string what = dp.attach("cli0", false);
  EXPECT_TRUE(what.starts_with("adopted the XDP link on cli0 and replaced program")) << what;
  Testbed bed(dp, sandbox);  // the whole configuration, applied after the restart

  // The program in the link forwards a new client of that configuration to its Maglev backend.
  const uint32_t attached = xdp_prog_id("cli0");
  const int prog = bpf_prog_get_fd_by_id(attached);
  ASSERT_GE(prog, 0);
  const IpAddr client = ip("100.64.0.9");
  const Bytes to_vip = Frame()
                           .eth(mac("02:00:00:00:c0:02"), mac("02:00:00:00:c0:01"))
                           .ipv4(client, ip("203.0.113.10"))
                           .udp(4500, 4500)
                           .payload(Bytes(64, 0x2a))
                           .build();
  const XdpResult r = run_xdp(prog, to_vip, sandbox.client_ifindex);
  close(prog);
  EXPECT_EQ(r.verdict, uint32_t{XDP_REDIRECT});
  const uint32_t id = bed.predict(kVs4, IpAddress::must_parse("100.64.0.9"));
  ASSERT_NE(id, IKELB_NO_BACKEND);
  ASSERT_GE(r.frame.size(), 34u);
  EXPECT_EQ(std::memcmp(&r.frame[30], &bed.backend(id).addr.addr, 4), 0)
      << "the destination is not " << bed.backend(id).addr.str();

  // And every map it reads is the one this agent writes.
  for (const auto& [name, map_id] : maps_of_program(attached)) {
    if (name.find('.') != std::string::npos) continue;  // .rodata: the program's own
    bpf_map_info info{};
    uint32_t len = sizeof(info);
    ASSERT_EQ(bpf_obj_get_info_by_fd(dp.map_fd(name), &info, &len), 0) << name;
    EXPECT_EQ(map_id, info.id) << "the attached program reads another " << name;
  }
  Datapath::teardown(pins);
}

TEST(Pinning, RefusesADirectoryOutsideBpffs) {
  [[maybe_unused]] Sandbox sandbox = Sandbox::create();
  char tmpl[] = "/tmp/ikelb-notbpf-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  try {
    Datapath dp(pinned(std::string(tmpl) + "/ikelb"));
    ADD_FAILURE() << "accepted a pin directory on tmpfs";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("is not on a bpf filesystem"), std::string::npos)
        << e.what();
  }
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace ikelb::test
