// The address filter (ikelb_abi.h, struct ikelb_addr_filter) lets packets skip the vips, reverse
// and local_addrs lookups that cannot succeed. It must never hide an entry: addresses that share
// a slot with a removed one keep their kind, and clients whose slot carries a VIP's, a backend's
// or a local address's bit are still served. The negative control clears a slot by hand and shows
// the traffic of its address is then no longer seen, so the cases above can fail.
#include "fixture.h"

namespace ikelb::test {
namespace {

uint32_t slot_of(const IpAddress& a) {
  return ikelb_addr_slot(&a.addr, a.family);
}

// The first of make(0), make(1), ... other than `a` that falls into `a`'s filter slot.
IpAddr same_slot(const IpAddr& a, const std::function<IpAddr(int)>& make) {
  const uint32_t want = slot_of(to_lb(a));
  for (int n = 0; n < 200000; n++) {
    IpAddr c = make(n);
    if (c != a && slot_of(to_lb(c)) == want) return c;
  }
  throw std::runtime_error("no address shares the slot of " + a.to_string());
}

IpAddr spare4(int n) {  // 198.18.0.0/15: nothing in the sandbox uses it
  return ip("198.18." + std::to_string(n / 256 % 256) + "." + std::to_string(n % 256));
}
IpAddr spare6(int n) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "2001:db8:e::%x:%x", n >> 16, n & 0xffff);
  return ip(buf);
}
IpAddr any_client4(int n) {  // 100.64.0.0/10, routed to the client side
  return ip("100." + std::to_string(64 + n / 65536) + "." + std::to_string(n / 256 % 256) + "." +
            std::to_string(n % 256));
}

void set_kind(Env& env, const IpAddr& a, uint8_t kinds) {
  const int fd = env.dp.map_fd(IKELB_MAP_ADDR_FILTER);
  const uint32_t zero = 0;
  ikelb_addr_filter f{};
  ASSERT_EQ(bpf_map_lookup_elem(fd, &zero, &f), 0);
  f.kinds[slot_of(to_lb(a))] = kinds;
  ASSERT_EQ(bpf_map_update_elem(fd, &zero, &f, BPF_ANY), 0);
}

// A VIP's four service entries (the testbed's services), added or removed.
void set_vip(Env& env, const IpAddr& vip, uint32_t vs, bool add) {
  for (uint16_t port : {500, 4500, 0}) {
    ServiceKey k{to_lb(vip), IPPROTO_UDP, port};
    add ? env.dp.set_service(k, vs) : env.dp.delete_service(k);
  }
  ServiceKey esp{to_lb(vip), IPPROTO_ESP, 0};
  add ? env.dp.set_service(esp, vs) : env.dp.delete_service(esp);
}

// A new client's IKE_SA_INIT to a VIP, forwarded to where Maglev puts it.
Step new_client(Env& env, const IpAddr& c, uint32_t vs) {
  const IpAddr vip = vs == kVs4 ? kVip4 : kVip6;
  Frame in = from_client(c, vip).udp(500, 500).payload(ike(0x2222, 0, kIkeSaInit, kFlagI, false));
  const uint32_t b = env.bed.predict(vs, to_lb(c));
  return forwarded(in, to_backend(in, be(env, b), c), b);
}

std::vector<Case> cases() {
  std::vector<Case> all;

  all.push_back(
      {"AVipSharingASlotWithARemovedVipIsStillServed",
       "another VIP in the slot of each test VIP (IPv4, IPv6) is added and removed again: the "
       "test VIPs' clients are still forwarded, the removed VIP's traffic is not ours",
       [](Env& env) {
         set_vip(env, same_slot(kVip4, spare4), kVs4, true);
         set_vip(env, same_slot(kVip6, spare6), kVs6, true);
         set_vip(env, same_slot(kVip4, spare4), kVs4, false);
         set_vip(env, same_slot(kVip6, spare6), kVs6, false);
       },
       [](Env& env) {
         Frame gone = from_client(client4(40), same_slot(kVip4, spare4)).udp(500, 500);
         return std::vector<Step>{
             new_client(env, client4(41), kVs4), new_client(env, client6(41), kVs6),
             untouched(gone.payload(ike_payload(30)).build(), IKELB_OUT_PASS_NOT_OURS)};
       },
       {{IKELB_EV_AFFINITY_MISS, 2}},
       nullptr});

  all.push_back(
      {"ABackendSharingASlotWithARemovedBackendStillReplies",
       "another backend address in gw1's slot (IPv4, IPv6) gets a reverse entry that is deleted "
       "again: gw1's replies are still translated",
       [](Env& env) {
         for (uint32_t b : {0u, 3u}) {
           const IpAddr gw = to_test(be(env, b).addr);
           const IpAddr other = same_slot(gw, b == 0 ? spare4 : spare6);
           const uint32_t vs = be(env, b).vs_id;
           env.dp.set_reverse(to_lb(other),
                              {.vip = env.bed.vip(vs).addr, .vs_id = vs, .backend_id = b});
           env.dp.delete_reverse(to_lb(other));
         }
       },
       [](Env& env) {
         IpAddr c = client4(42), c6 = client6(42);
         Frame r4 = from_backend(be(env, 0), c).udp(4500, 4500).payload(ike_payload(60));
         Frame r6 = from_backend(be(env, 3), c6).esp(0x0a0b0c0d, 3).payload(ike_payload(64));
         return std::vector<Step>{replied(r4, to_client(r4, kVip4, c), 0),
                                  replied(r6, to_client(r6, kVip6, c6), 3)};
       },
       {},
       nullptr});

  all.push_back(
      {"ALocalAddressSharingASlotWithARemovedOneStillTakesProbeAnswers",
       "the host gains an address in 10.0.0.1's slot and loses it again: a backend's answer to "
       "10.0.0.1 is still a probe answer, left to the kernel untouched",
       [](Env& env) {
         const IpAddress local = IpAddress::must_parse("10.0.0.1");
         const IpAddress other = to_lb(same_slot(to_test(local), spare4));
         std::vector<IpAddress> host = {local, IpAddress::must_parse("fd00::1"),
                                        IpAddress::must_parse("198.51.100.1")};
         std::vector<IpAddress> more = host;
         more.push_back(other);
         EXPECT_EQ(env.dp.set_local_addresses(more), 1u);
         EXPECT_EQ(env.dp.set_local_addresses(host), 1u);
       },
       [](Env& env) {
         Frame v4 =
             from_backend(be(env, 0), ip("10.0.0.1")).udp(500, 40000).payload(ike_payload(36));
         return std::vector<Step>{untouched(v4.build(), IKELB_OUT_PASS_NOT_OURS, Port::kGateway)};
       },
       {},
       nullptr});

  all.push_back(
      {"ClientsInTheSlotOfAVipABackendOrALocalAddressAreServed",
       "clients whose slot carries a VIP's or gw1's bit are not taken for forged sources (new "
       "clients forwarded), and a reply to a client in 10.0.0.1's slot is translated",
       nullptr,
       [](Env& env) {
         const IpAddr in_vip_slot = same_slot(kVip4, any_client4);
         const IpAddr in_gw_slot = same_slot(to_test(be(env, 0).addr), any_client4);
         const IpAddr in_local_slot = same_slot(ip("10.0.0.1"), any_client4);
         Frame r = from_backend(be(env, 1), in_local_slot).udp(4500, 4500).payload(ike_payload(50));
         return std::vector<Step>{new_client(env, in_vip_slot, kVs4),
                                  new_client(env, in_gw_slot, kVs4),
                                  replied(r, to_client(r, kVip4, in_local_slot), 1)};
       },
       {{IKELB_EV_AFFINITY_MISS, 2}},
       nullptr});

  all.push_back(
      {"WithTheirSlotsClearedAVipAndABackendAreNotSeen",
       "negative control: clearing the slot of the IPv4 VIP and of gw1 by hand makes the data path "
       "pass a client's packet to the VIP and gw1's reply untouched (the cases above would fail "
       "if the agent cleared a slot that still has an entry behind it); the IPv6 VIP, whose slot "
       "is kept, is still served",
       [](Env& env) {
         set_kind(env, kVip4, 0);
         set_kind(env, to_test(be(env, 0).addr), 0);
       },
       [](Env& env) {
         IpAddr c = client4(43);
         Frame to_vip = from_client(c, kVip4).udp(4500, 4500).payload(ike_payload(70));
         Frame reply = from_backend(be(env, 0), c).udp(4500, 4500).payload(ike_payload(60));
         return std::vector<Step>{untouched(to_vip.build(), IKELB_OUT_PASS_NOT_OURS),
                                  untouched(reply.build(), IKELB_OUT_PASS_NOT_OURS, Port::kGateway),
                                  new_client(env, client6(43), kVs6)};
       },
       {{IKELB_EV_AFFINITY_MISS, 1}},
       nullptr});
  return all;
}

class AddrFilterTest : public ::testing::TestWithParam<Case> {};

TEST_P(AddrFilterTest, Fixture) {
  run_case(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Cases, AddrFilterTest, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace ikelb::test
