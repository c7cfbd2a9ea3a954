// The address filter (ikelb_abi.h, struct ikelb_addr_filter) lets packets skip the vips, reverse
// and local_addrs lookups that cannot succeed. It must never hide an entry: addresses that share
// a slot with a removed one keep their kind, and clients whose slot carries a VIP's, a backend's
// or a local address's bit are still served. The negative control clears a slot by hand and shows
// the traffic of its address is then no longer seen, so the cases above can fail.
//
// A slot with one VIP also has a record of that VIP's services (struct ikelb_vip_record), which a
// client's packet reads instead of vips while the slot's IKELB_ADDR_RECORD bit is set. The record
// cases check what the agent publishes, that a changed service is answered right (by vips) before
// the next publication and by the record after it, that slots a record cannot describe stay with
// vips, and, as their negative control, that a stale record decides what is a service.
#include "fixture.h"

namespace ikelb::test {
namespace {

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

// --- VIP records ------------------------------------------------------------------------------

ikelb_vip_record record_of(Env& env, const IpAddr& a) {
  const uint32_t slot = slot_of(to_lb(a));
  ikelb_vip_record r{};
  EXPECT_EQ(bpf_map_lookup_elem(env.dp.map_fd(IKELB_MAP_VIP_RECORDS), &slot, &r), 0);
  return r;
}

// A record's services as "proto/port->vs", in its order.
std::vector<std::string> listed(const ikelb_vip_record& r) {
  std::vector<std::string> out;
  for (int i = 0; i < r.count && i < IKELB_VIP_RECORD_SERVICES; i++)
    out.push_back(std::to_string(r.services[i].proto) + "/" +
                  std::to_string(ntohs(r.services[i].port)) + "->" +
                  std::to_string(r.services[i].vs_id));
  return out;
}

void expect_record(Env& env, const IpAddr& vip, const std::vector<std::string>& services) {
  EXPECT_EQ(kinds_of(env, vip), IKELB_ADDR_VIP | IKELB_ADDR_RECORD) << vip.to_string();
  const ikelb_vip_record r = record_of(env, vip);
  const IpAddress want = to_lb(vip);
  EXPECT_EQ(r.family, want.family);
  EXPECT_EQ(std::memcmp(&r.addr, &want.addr, sizeof(r.addr)), 0);
  EXPECT_EQ(listed(r), services);
}

void expect_no_record(Env& env, const IpAddr& vip) {
  EXPECT_EQ(kinds_of(env, vip), IKELB_ADDR_VIP) << vip.to_string();
}

void set_udp(Env& env, uint16_t port, bool add) {  // a service of the IPv4 VIP, in kVs4
  ServiceKey k{to_lb(kVip4), IPPROTO_UDP, port};
  add ? env.dp.set_service(k, kVs4) : env.dp.delete_service(k);
}

// A new client's datagram to `vip`'s UDP `port`: forwarded where Maglev puts it in `vs`.
Step new_client_to(Env& env, const IpAddr& c, const IpAddr& vip, uint16_t port, uint32_t vs) {
  Frame in = from_client(c, vip).udp(40000, port).payload(ike_payload(48));
  const uint32_t b = env.bed.predict(vs, to_lb(c));
  return forwarded(in, to_backend(in, be(env, b), c), b);
}

Step not_a_service(const IpAddr& c, const IpAddr& vip, uint16_t port) {
  return untouched(from_client(c, vip).udp(40000, port).payload(ike_payload(48)).build(),
                   IKELB_OUT_PASS_NOT_OURS);
}

const std::vector<std::string> kVip4Services = {"17/0->0", "17/500->0", "17/4500->0", "50/0->0"};

std::vector<Case> record_cases() {
  std::vector<Case> all;

  all.push_back({"TheVipsArePublishedInRecords",
                 "after the test bed's flush, both VIPs' slots have the record bit and a record "
                 "of their four services; clients of both are forwarded",
                 nullptr,
                 [](Env& env) {
                   return std::vector<Step>{new_client_to(env, client4(60), kVip4, 4500, kVs4),
                                            new_client_to(env, client6(60), kVip6, 500, kVs6)};
                 },
                 {{IKELB_EV_AFFINITY_MISS, 2}},
                 [](Env& env) {
                   expect_record(env, kVip4, kVip4Services);
                   expect_record(env, kVip6, {"17/0->1", "17/500->1", "17/4500->1", "50/0->1"});
                 }});

  all.push_back({"AnAddedServiceIsServedBeforeTheNextFlush",
                 "UDP 1701 is added to the IPv4 VIP and not flushed: the slot has lost its record "
                 "bit and vips answers, so 1701 and 4500 are both forwarded",
                 [](Env& env) { set_udp(env, 1701, true); },
                 [](Env& env) {
                   return std::vector<Step>{new_client_to(env, client4(61), kVip4, 1701, kVs4),
                                            new_client_to(env, client4(62), kVip4, 4500, kVs4)};
                 },
                 {{IKELB_EV_AFFINITY_MISS, 2}},
                 [](Env& env) { expect_no_record(env, kVip4); }});

  all.push_back(
      {"AnAddedServiceIsInTheNextRecord",
       "UDP 1701 is added to the IPv4 VIP and flushed: the record lists it, 1701 is "
       "forwarded and 1702 is not a service",
       [](Env& env) {
         set_udp(env, 1701, true);
         env.dp.flush();
       },
       [](Env& env) {
         return std::vector<Step>{new_client_to(env, client4(63), kVip4, 1701, kVs4),
                                  not_a_service(client4(64), kVip4, 1702)};
       },
       {{IKELB_EV_AFFINITY_MISS, 1}},
       [](Env& env) {
         expect_record(env, kVip4, {"17/0->0", "17/500->0", "17/1701->0", "17/4500->0", "50/0->0"});
       }});

  all.push_back({"ARemovedServiceIsNotServedEvenBeforeTheNextFlush",
                 "UDP 500 is removed from the IPv4 VIP and not flushed: 500 is no longer a "
                 "service, 4500 still is",
                 [](Env& env) { set_udp(env, 500, false); },
                 [](Env& env) {
                   return std::vector<Step>{not_a_service(client4(65), kVip4, 500),
                                            new_client_to(env, client4(66), kVip4, 4500, kVs4)};
                 },
                 {{IKELB_EV_AFFINITY_MISS, 1}},
                 [](Env& env) { expect_no_record(env, kVip4); }});

  all.push_back({"ARemovedServiceIsNotInTheNextRecord",
                 "UDP 500 is removed from the IPv4 VIP and flushed: the record lacks it, 500 is "
                 "not a service, 4500 is",
                 [](Env& env) {
                   set_udp(env, 500, false);
                   env.dp.flush();
                 },
                 [](Env& env) {
                   return std::vector<Step>{not_a_service(client4(67), kVip4, 500),
                                            new_client_to(env, client4(68), kVip4, 4500, kVs4)};
                 },
                 {{IKELB_EV_AFFINITY_MISS, 1}},
                 [](Env& env) {
                   expect_record(env, kVip4, {"17/0->0", "17/4500->0", "50/0->0"});
                 }});

  all.push_back({"TwoVipsInASlotAreAskedOfVips",
                 "a second VIP (in kVs4) in the IPv4 VIP's slot, flushed: the slot gets no record, "
                 "and clients of both VIPs are forwarded",
                 [](Env& env) {
                   set_vip(env, same_slot(kVip4, spare4), kVs4, true);
                   env.dp.flush();
                 },
                 [](Env& env) {
                   return std::vector<Step>{
                       new_client_to(env, client4(69), kVip4, 4500, kVs4),
                       new_client_to(env, client4(70), same_slot(kVip4, spare4), 500, kVs4)};
                 },
                 {{IKELB_EV_AFFINITY_MISS, 2}},
                 [](Env& env) { expect_no_record(env, kVip4); }});

  all.push_back({"MoreServicesThanARecordHoldsAreAskedOfVips",
                 "UDP 1701 and 1702 are added to the IPv4 VIP (6 services, a record holds 5) and "
                 "flushed: no record, and 1701, 1702 and 4500 are forwarded",
                 [](Env& env) {
                   set_udp(env, 1701, true);
                   set_udp(env, 1702, true);
                   env.dp.flush();
                 },
                 [](Env& env) {
                   return std::vector<Step>{new_client_to(env, client4(71), kVip4, 1701, kVs4),
                                            new_client_to(env, client4(72), kVip4, 1702, kVs4),
                                            new_client_to(env, client4(73), kVip4, 4500, kVs4)};
                 },
                 {{IKELB_EV_AFFINITY_MISS, 3}},
                 [](Env& env) { expect_no_record(env, kVip4); }});

  all.push_back(
      {"AStaleRecordDecides",
       "negative control: the IPv4 VIP's record is overwritten by hand with one that "
       "lists only UDP 1701 (not in vips): 1701 is forwarded and 4500 is not a service, "
       "so the cases above would fail if the agent left a record stale and readable",
       [](Env& env) {
         ikelb_vip_record r = record_of(env, kVip4);
         r.count = 1;
         r.services[0] = {.port = htons(1701), .proto = IPPROTO_UDP, .pad = 0, .vs_id = kVs4};
         const uint32_t slot = slot_of(to_lb(kVip4));
         ASSERT_EQ(bpf_map_update_elem(env.dp.map_fd(IKELB_MAP_VIP_RECORDS), &slot, &r, BPF_ANY),
                   0);
       },
       [](Env& env) {
         return std::vector<Step>{new_client_to(env, client4(74), kVip4, 1701, kVs4),
                                  not_a_service(client4(75), kVip4, 4500)};
       },
       {{IKELB_EV_AFFINITY_MISS, 1}},
       nullptr});
  return all;
}

std::vector<Case> cases() {
  std::vector<Case> all = record_cases();

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
