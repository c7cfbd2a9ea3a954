// Table-driven fixtures run through the real compiled XDP object with BPF_PROG_TEST_RUN. Each
// case is a description, a map set-up and steps of {input frame, ingress port, expected verdict,
// expected output frame, expected outcome}. Outputs are compared byte-for-byte with frames the
// test builder computed from scratch (so the data path's incremental checksum updates must agree
// with full recomputations), re-verified by verify_checksums, and the counters of every case
// must equal what its steps sent. Each case runs in its own process, network namespace and
// freshly loaded object (gtest_discover_tests), so nothing leaks between cases.
#include "fixture.h"

namespace ikelb::test {
namespace {

// --- The cases --------------------------------------------------------------------------------

std::vector<Case> cases() {
  std::vector<Case> all;

  all.push_back({"Ipv4Udp500Forwarded",
                 "IPv4 UDP 500 to the VIP: destination rewritten, source kept, TTL - 1, MACs "
                 "from the FIB, redirected to the gateway port",
                 nullptr,
                 [](Env& env) {
                   IpAddr c = client4(0);
                   uint32_t b = env.bed.predict(kVs4, to_lb(c));
                   Frame in = from_client(c, kVip4).udp(5000, 500).payload(ike_payload(300));
                   return std::vector<Step>{forwarded(in, to_backend(in, be(env, b), c), b)};
                 },
                 {{IKELB_EV_AFFINITY_MISS, 1}},
                 nullptr});

  all.push_back({"SameClientSameBackendOn500And4500AndEsp",
                 "one client's UDP 500, UDP 4500 (NAT-T) and ESP reach one backend; the second "
                 "and third packets are affinity hits",
                 nullptr,
                 [](Env& env) {
                   IpAddr c = client4(1);
                   uint32_t b = env.bed.predict(kVs4, to_lb(c));
                   Frame a = from_client(c, kVip4).udp(500, 500).payload(ike_payload(200));
                   Frame n = from_client(c, kVip4).udp(4500, 4500).payload(ike_payload(120));
                   Frame e = from_client(c, kVip4).esp(0xc0ffee01, 7).payload(ike_payload(64));
                   return std::vector<Step>{forwarded(a, to_backend(a, be(env, b), c), b),
                                            forwarded(n, to_backend(n, be(env, b), c), b),
                                            forwarded(e, to_backend(e, be(env, b), c), b)};
                 },
                 {{IKELB_EV_AFFINITY_MISS, 1}, {IKELB_EV_AFFINITY_HIT, 2}},
                 nullptr});

  all.push_back({"ThousandClientsFollowTheMaglevTable",
                 "1,000 clients each reach the backend the Maglev table gives, and all three "
                 "backends get a fair share",
                 nullptr,
                 [](Env& env) {
                   std::vector<Step> steps;
                   std::map<uint32_t, int> share;
                   for (int n = 0; n < 1000; n++) {
                     IpAddr c = client4(n);
                     uint32_t b = env.bed.predict(kVs4, to_lb(c));
                     share[b]++;
                     Frame in = from_client(c, kVip4).udp(500, 500).payload(ike_payload(40));
                     steps.push_back(forwarded(in, to_backend(in, be(env, b), c), b));
                   }
                   for (uint32_t b = 0; b < 3; b++) {
                     EXPECT_GT(share[b], 250) << "backend " << b;
                     EXPECT_LT(share[b], 420) << "backend " << b;
                   }
                   return steps;
                 },
                 {{IKELB_EV_AFFINITY_MISS, 1000}},
                 nullptr});

  all.push_back({"Ipv4FragmentsOfOneDatagramReachOneBackend",
                 "first and non-first IPv4 fragments of an IKE_AUTH reach one backend; the first "
                 "fragment's UDP checksum covers the whole datagram and is still right",
                 nullptr,
                 [](Env& env) {
                   IpAddr c = client4(2);
                   uint32_t b = env.bed.predict(kVs4, to_lb(c));
                   Frame in = from_client(c, kVip4).udp(4500, 4500).payload(ike_payload(2400));
                   std::vector<Step> steps;
                   EXPECT_EQ(add_fragments(steps, in, to_backend(in, be(env, b), c), 1480,
                                           Port::kClient, b, IKELB_DIR_TO_BACKEND),
                             2u);
                   return steps;
                 },
                 {{IKELB_EV_AFFINITY_MISS, 1}, {IKELB_EV_AFFINITY_HIT, 1}},
                 nullptr});

  all.push_back(
      {"NonFirstFragmentArrivingFirstGoesToTheSameBackend",
       "a non-first fragment overtaking the first: chosen from the source address "
       "alone, so it lands where the first fragment will",
       nullptr,
       [](Env& env) {
         IpAddr c = client4(3);
         uint32_t b = env.bed.predict(kVs4, to_lb(c));
         Frame in = from_client(c, kVip4).udp(4500, 4500).payload(ike_payload(2000));
         auto ins = in.build_fragments(1480);
         auto outs = to_backend(in, be(env, b), c).build_fragments(1480);
         auto counted = std::pair{b, uint32_t{IKELB_DIR_TO_BACKEND}};
         return std::vector<Step>{
             {ins[1], Port::kClient, XDP_REDIRECT, outs[1], IKELB_OUT_FWD_REDIRECT, counted},
             {ins[0], Port::kClient, XDP_REDIRECT, outs[0], IKELB_OUT_FWD_REDIRECT, counted}};
       },
       {{IKELB_EV_AFFINITY_MISS, 1}, {IKELB_EV_AFFINITY_HIT, 1}},
       nullptr});

  all.push_back(
      {"Ipv6UdpEspAndFragment",
       "IPv6: UDP 500, ESP, and both fragments of a UDP 4500 datagram reach the same "
       "backend with the hop limit decremented",
       nullptr,
       [](Env& env) {
         IpAddr c = client6(0);
         uint32_t b = env.bed.predict(kVs6, to_lb(c));
         Frame u = from_client(c, kVip6).udp(500, 500).payload(ike_payload(250));
         Frame e = from_client(c, kVip6).esp(0x01020304, 1).payload(ike_payload(80));
         Frame big =
             from_client(c, kVip6).ip_id(0xabcdef).udp(4500, 4500).payload(ike_payload(1800));
         std::vector<Step> steps{forwarded(u, to_backend(u, be(env, b), c), b),
                                 forwarded(e, to_backend(e, be(env, b), c), b)};
         add_fragments(steps, big, to_backend(big, be(env, b), c), 1232, Port::kClient, b,
                       IKELB_DIR_TO_BACKEND);
         return steps;
       },
       {{IKELB_EV_AFFINITY_MISS, 1}, {IKELB_EV_AFFINITY_HIT, 3}},
       nullptr});

  all.push_back(
      {"Ipv4UdpChecksumZeroStaysZero",
       "an IPv4 UDP datagram without checksum keeps checksum 0 after the rewrite",
       nullptr,
       [](Env& env) {
         IpAddr c = client4(4);
         uint32_t b = env.bed.predict(kVs4, to_lb(c));
         Frame in = from_client(c, kVip4).udp(4500, 4500).payload(ike_payload(100)).udp_checksum(0);
         return std::vector<Step>{forwarded(in, to_backend(in, be(env, b), c), b)};
       },
       {{IKELB_EV_AFFINITY_MISS, 1}},
       nullptr});

  all.push_back({"Ipv4HeaderWithOptions",
                 "an IPv4 header with options (ihl 6) is parsed past its options and rewritten",
                 nullptr,
                 [](Env& env) {
                   IpAddr c = client4(5);
                   uint32_t b = env.bed.predict(kVs4, to_lb(c));
                   Frame in = from_client(c, kVip4)
                                  .options({0x94, 0x04, 0x00, 0x00})
                                  .udp(500, 500)
                                  .payload(ike_payload(60));
                   return std::vector<Step>{forwarded(in, to_backend(in, be(env, b), c), b)};
                 },
                 {{IKELB_EV_AFFINITY_MISS, 1}},
                 nullptr});

  all.push_back(
      {"VlanTaggedFramesAreRewrittenAndLeftToTheKernel",
       "802.1Q and QinQ frames to the VIP: rewritten (destination, checksums), tags, "
       "MACs and TTL left as they were, passed to the kernel that owns the VLAN "
       "interfaces",
       nullptr,
       [](Env& env) {
         IpAddr c = client4(6);
         uint32_t b = env.bed.predict(kVs4, to_lb(c));
         Frame q = from_client(c, kVip4).vlan(100).udp(500, 500).payload(ike_payload(90));
         Frame qq = from_client(c, kVip4)
                        .vlan(10, kTpid8021ad)
                        .vlan(20)
                        .esp(7, 1)
                        .payload(ike_payload(40));
         return std::vector<Step>{
             forwarded(q, to_backend(q, be(env, b), c, false), b, IKELB_OUT_FWD_KERNEL_VLAN),
             forwarded(qq, to_backend(qq, be(env, b), c, false), b, IKELB_OUT_FWD_KERNEL_VLAN)};
       },
       {{IKELB_EV_AFFINITY_MISS, 1}, {IKELB_EV_AFFINITY_HIT, 1}},
       nullptr});

  all.push_back(
      {"NotForUsPassesUnchanged",
       "other destination, TCP and UDP 53 to the VIP, ARP, IPv6 neighbour "
       "solicitation: XDP_PASS, frame untouched",
       nullptr,
       [](Env&) {
         IpAddr c = client4(7);
         return std::vector<Step>{
             untouched(
                 from_client(c, ip("192.0.2.99")).udp(500, 500).payload(ike_payload(30)).build(),
                 IKELB_OUT_PASS_NOT_OURS),
             untouched(from_client(c, kVip4).l4(kProtoTcp, ike_payload(20)).build(),
                       IKELB_OUT_PASS_NOT_OURS),
             untouched(from_client(c, kVip4).udp(40000, 53).payload(ike_payload(30)).build(),
                       IKELB_OUT_PASS_NOT_OURS),
             untouched(
                 from_client(client6(7), kVip6).udp(40000, 53).payload(ike_payload(30)).build(),
                 IKELB_OUT_PASS_NOT_OURS),
             untouched(
                 arp_request(kClientRouterMac, ip("198.51.100.2"), ip("198.51.100.1")).build(),
                 IKELB_OUT_PASS_NOT_IP),
             untouched(
                 neighbour_solicitation(kClientRouterMac, ip("2001:db8:c::2"), ip("2001:db8:c::1"))
                     .build(),
                 IKELB_OUT_PASS_NOT_OURS)};
       },
       {},
       nullptr});

  // Several nodes for one VIP (docs/high-availability.md): the routing and VRRP traffic of the
  // node itself must reach its daemons untouched, also when it names the VIP or comes from a
  // gateway's address (gateways may peer with the nodes).
  all.push_back(
      {"HighAvailabilityControlTrafficPassesUntouched",
       "VRRP (IPv4 and IPv6, protocol 112), gratuitous ARP and unsolicited NA for the VIP, "
       "unicast NS to the VIP, BGP (TCP 179) and BFD (UDP 3784/4784) from the router and from "
       "a gateway's address: XDP_PASS, frame untouched",
       nullptr,
       [](Env& env) {
         const Mac peer = mac("02:00:00:00:c0:03");
         const Bytes vrrp = {0x31, 0x0a, 0x64, 0x01, 0x00, 0x64,
                             0x00, 0x00, 0xcb, 0x00, 0x71, 0x0a};  // VRRPv3, VRID 10, one address
         Frame vrrp4;
         vrrp4.eth(peer, mac("01:00:5e:00:00:12"))
             .ipv4(ip("198.51.100.3"), ip("224.0.0.18"))
             .ttl(255)
             .l4(112, vrrp);
         Frame vrrp6;
         vrrp6.eth(peer, mac("33:33:00:00:00:12"))
             .ipv6(ip("fe80::3"), ip("ff02::12"))
             .hop_limit(255)
             .l4(112, vrrp);
         Frame garp = arp_request(peer, kVip4, kVip4);
         garp.eth(peer, mac("ff:ff:ff:ff:ff:ff"));
         // Neighbour advertisement (type 136, override flag) for the VIP, to all nodes.
         Bytes na = {136, 0, 0, 0, 0x20, 0, 0, 0};
         for (int i = 0; i < 16; i++) na.push_back(kVip6.bytes()[i]);
         {  // ICMPv6 checksum: pseudo-header (source, destination, length, next header) + body
           uint32_t sum = 0;
           Bytes pseudo(kVip6.bytes().begin(), kVip6.bytes().end());
           IpAddr all = ip("ff02::1");
           pseudo.insert(pseudo.end(), all.bytes().begin(), all.bytes().end());
           pseudo.insert(pseudo.end(), {0, 0, 0, uint8_t(na.size()), 0, 0, 0, kProtoIcmpv6});
           pseudo.insert(pseudo.end(), na.begin(), na.end());
           for (size_t i = 0; i < pseudo.size(); i += 2)
             sum += uint32_t(pseudo[i]) << 8 | pseudo[i + 1];
           while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
           na[2] = uint8_t(~sum >> 8);
           na[3] = uint8_t(~sum);
         }
         Frame una;
         una.eth(peer, mac("33:33:00:00:00:01"))
             .ipv6(kVip6, ip("ff02::1"))
             .hop_limit(255)
             .l4(kProtoIcmpv6, na);
         Frame nud = neighbour_solicitation(kClientRouterMac, ip("2001:db8:c::2"), kVip6);
         nud.eth(kClientRouterMac, kClientPortMac).ipv6(ip("2001:db8:c::2"), kVip6);
         // TCP SYN 40000 -> 179 (and 179 -> 40000 from a gateway).
         auto tcp = [](uint16_t sport, uint16_t dport) {
           return Bytes{uint8_t(sport >> 8),
                        uint8_t(sport),
                        uint8_t(dport >> 8),
                        uint8_t(dport),
                        0,
                        0,
                        0,
                        1,
                        0,
                        0,
                        0,
                        0,
                        0x50,
                        0x02,
                        0xff,
                        0xff,
                        0,
                        0,
                        0,
                        0};
         };
         Frame bgp =
             from_client(ip("198.51.100.2"), ip("198.51.100.1")).l4(kProtoTcp, tcp(40000, 179));
         Frame bgp_gw = from_backend(be(env, 0), ip("10.0.0.1")).l4(kProtoTcp, tcp(179, 40000));
         Frame bfd = from_client(ip("198.51.100.2"), ip("198.51.100.1"))
                         .udp(49152, 3784)
                         .payload(ike_payload(24));
         Frame bfd_gw =
             from_backend(be(env, 1), ip("10.0.0.1")).udp(49153, 3784).payload(ike_payload(24));
         Frame bfd_mh =
             from_backend(be(env, 2), ip("10.0.0.1")).udp(49154, 4784).payload(ike_payload(24));
         Frame bfd_vip =
             from_client(ip("198.51.100.2"), kVip4).udp(49155, 3784).payload(ike_payload(24));
         return std::vector<Step>{
             untouched(vrrp4.build(), IKELB_OUT_PASS_NOT_OURS),
             untouched(vrrp6.build(), IKELB_OUT_PASS_NOT_OURS),
             untouched(garp.build(), IKELB_OUT_PASS_NOT_IP),
             untouched(una.build(), IKELB_OUT_PASS_ICMP_OTHER),
             untouched(nud.build(), IKELB_OUT_PASS_NOT_OURS),
             untouched(bgp.build(), IKELB_OUT_PASS_NOT_OURS),
             untouched(bgp_gw.build(), IKELB_OUT_PASS_NOT_OURS, Port::kGateway),
             untouched(bfd.build(), IKELB_OUT_PASS_NOT_OURS),
             untouched(bfd_gw.build(), IKELB_OUT_PASS_NOT_OURS, Port::kGateway),
             untouched(bfd_mh.build(), IKELB_OUT_PASS_NOT_OURS, Port::kGateway),
             untouched(bfd_vip.build(), IKELB_OUT_PASS_NOT_OURS)};
       },
       {},
       nullptr});

  all.push_back(
      {"MalformedToTheVipIsDroppedAndCounted",
       "truncated VLAN header, truncated IPv4 header, ihl < 5, total length beyond the "
       "frame, truncated UDP header, UDP length longer or shorter than the datagram, "
       "ESP with SPI 0: dropped, never forwarded",
       nullptr,
       [](Env&) {
         IpAddr c = client4(8);
         Frame udp = from_client(c, kVip4).udp(500, 500).payload(ike_payload(100));
         return std::vector<Step>{
             dropped(from_client(c, kVip4)
                         .vlan(5)
                         .udp(500, 500)
                         .payload(ike_payload(10))
                         .truncate(16)
                         .build(),
                     IKELB_OUT_DROP_MALFORMED_L2),
             dropped(Frame(udp).truncate(14 + 12).build(), IKELB_OUT_DROP_MALFORMED_IP),
             dropped(Frame(udp).ihl(4).build(), IKELB_OUT_DROP_MALFORMED_IP),
             dropped(Frame(udp).ip_length(20 + 8 + 100 + 40).build(), IKELB_OUT_DROP_MALFORMED_IP),
             dropped(from_client(c, kVip4).l4(kProtoUdp, {0x01, 0xf4, 0x01}).build(),
                     IKELB_OUT_DROP_MALFORMED_L4),
             dropped(Frame(udp).udp_length(8 + 140).build(), IKELB_OUT_DROP_MALFORMED_L4),
             dropped(Frame(udp).udp_length(8 + 60).build(), IKELB_OUT_DROP_MALFORMED_L4),
             dropped(from_client(c, kVip4).esp(0, 1).payload(ike_payload(20)).build(),
                     IKELB_OUT_DROP_MALFORMED_L4),
             dropped(from_client(client6(8), kVip6)
                         .udp(500, 500)
                         .payload(ike_payload(50))
                         .udp_length(8 + 49)
                         .build(),
                     IKELB_OUT_DROP_MALFORMED_L4)};
       },
       {},
       nullptr});

  all.push_back(
      {"ReversePathSourceBecomesTheVip",
       "backend replies on UDP 500, UDP 4500 and ESP leave from the VIP towards the "
       "client, IPv4 and IPv6; backend UDP 53 is untouched",
       nullptr,
       [](Env& env) {
         IpAddr c = client4(9), c6 = client6(9);
         Frame r500 = from_backend(be(env, 1), c).udp(500, 500).payload(ike_payload(280));
         Frame r4500 = from_backend(be(env, 2), c).udp(4500, 4500).payload(ike_payload(180));
         Frame resp = from_backend(be(env, 0), c).esp(0xdeadbeef, 9).payload(ike_payload(96));
         Frame r6 = from_backend(be(env, 4), c6).esp(0x0a0b0c0d, 3).payload(ike_payload(64));
         Frame dns = from_backend(be(env, 0), c).udp(53, 40000).payload(ike_payload(40));
         return std::vector<Step>{replied(r500, to_client(r500, kVip4, c), 1),
                                  replied(r4500, to_client(r4500, kVip4, c), 2),
                                  replied(resp, to_client(resp, kVip4, c), 0),
                                  replied(r6, to_client(r6, kVip6, c6), 4),
                                  untouched(dns.build(), IKELB_OUT_PASS_NOT_OURS, Port::kGateway)};
       },
       {},
       nullptr});

  all.push_back(
      {"ProbeAnswersToTheHostAreNotTranslated",
       "a backend's UDP 500/4500 datagram to one of the host's own addresses is the "
       "answer to a health probe: left to the kernel untouched, IPv4 and IPv6",
       nullptr,
       [](Env& env) {
         Frame v4 =
             from_backend(be(env, 0), ip("10.0.0.1")).udp(500, 40000).payload(ike_payload(36));
         Frame v6 =
             from_backend(be(env, 3), ip("fd00::1")).udp(4500, 40001).payload(ike_payload(40));
         return std::vector<Step>{untouched(v4.build(), IKELB_OUT_PASS_NOT_OURS, Port::kGateway),
                                  untouched(v6.build(), IKELB_OUT_PASS_NOT_OURS, Port::kGateway)};
       },
       {},
       nullptr});

  all.push_back(
      {"FragmentedReplyTranslatedWhole",
       "a backend's fragmented IKE_AUTH reply: the first fragment teaches the later ones "
       "their VIP; the reassembled datagram has a valid UDP checksum. A later fragment "
       "whose first was never seen is left to the kernel untouched",
       nullptr,
       [](Env& env) {
         IpAddr c = client4(10);
         Frame r = from_backend(be(env, 2), c).udp(4500, 4500).payload(ike_payload(3000));
         std::vector<Step> steps;
         EXPECT_EQ(add_fragments(steps, r, to_client(r, kVip4, c), 1480, Port::kGateway, 2,
                                 IKELB_DIR_TO_CLIENT),
                   3u);
         Frame other =
             from_backend(be(env, 2), c).ip_id(0x5555).udp(4500, 4500).payload(ike_payload(2000));
         steps.push_back(untouched(other.build_fragments(1480)[1], IKELB_OUT_PASS_FRAG_UNKNOWN,
                                   Port::kGateway));
         return steps;
       },
       {{IKELB_EV_REPLY_FRAGMENT_LEARNED, 1}},
       nullptr});

  all.push_back(
      {"DrainingBackendKeepsPinnedClientsOnly",
       "a client pinned to a draining backend stays on it; a new client whose Maglev "
       "slot holds the draining backend goes to the next active slot",
       [](Env& env) { env.bed.set_state(1, IKELB_BACKEND_DRAINING); },
       [](Env& env) {
         IpAddr pinned = client4(11);
         env.bed.pin(kVs4, to_lb(pinned), 1);
         // A new client that the table (before the drain) would give to backend 1.
         env.bed.set_state(1, IKELB_BACKEND_ACTIVE);
         IpAddr fresh = find_client(
             env, kVs4, [](uint32_t b) { return b == 1; }, 100);
         env.bed.set_state(1, IKELB_BACKEND_DRAINING);
         uint32_t next = env.bed.predict(kVs4, to_lb(fresh));
         EXPECT_NE(next, 1u);
         EXPECT_NE(next, IKELB_NO_BACKEND);
         Frame p = from_client(pinned, kVip4).esp(0x1111, 5).payload(ike_payload(50));
         Frame f = from_client(fresh, kVip4).udp(500, 500).payload(ike_payload(50));
         return std::vector<Step>{forwarded(p, to_backend(p, be(env, 1), pinned), 1),
                                  forwarded(f, to_backend(f, be(env, next), fresh), next)};
       },
       {{IKELB_EV_AFFINITY_HIT, 1}, {IKELB_EV_AFFINITY_MISS, 1}, {IKELB_EV_MAGLEV_PROBED, 1}},
       [](Env& env) {
         auto st = env.dp.backend_stats(1);
         EXPECT_EQ(st.new_clients, 0u);
         EXPECT_EQ(st.failovers_from, 0u);
       }});

  all.push_back({"DownBackendFailsOverPinnedClients",
                 "a client pinned to a backend that went down is re-hashed onto a live backend, "
                 "counted as a failover from the dead one, and re-pinned",
                 nullptr,
                 [](Env& env) {
                   IpAddr c = find_client(env, kVs4, [](uint32_t b) { return b != 0; });
                   env.bed.pin(kVs4, to_lb(c), 0);
                   env.bed.set_state(0, IKELB_BACKEND_DOWN);
                   uint32_t b = env.bed.predict(kVs4, to_lb(c));
                   Frame in = from_client(c, kVip4).udp(4500, 4500).payload(ike_payload(70));
                   return std::vector<Step>{forwarded(in, to_backend(in, be(env, b), c), b),
                                            forwarded(in, to_backend(in, be(env, b), c), b)};
                 },
                 {{IKELB_EV_FAILOVER, 1}, {IKELB_EV_AFFINITY_HIT, 1}},
                 [](Env& env) {
                   EXPECT_EQ(env.dp.backend_stats(0).failovers_from, 1u);
                   EXPECT_EQ(env.dp.backend_stats(0).traffic.packets[IKELB_DIR_TO_BACKEND], 0u);
                 }});

  all.push_back({"DisabledBackendFailsOverToo",
                 "disabled (operator) behaves as down for pinned clients",
                 nullptr,
                 [](Env& env) {
                   IpAddr c = client6(12);
                   uint32_t was = env.bed.predict(kVs6, to_lb(c));
                   env.bed.pin(kVs6, to_lb(c), was);
                   env.bed.set_state(was, IKELB_BACKEND_DISABLED);
                   uint32_t b = env.bed.predict(kVs6, to_lb(c));
                   EXPECT_NE(b, was);
                   Frame in = from_client(c, kVip6).esp(0x99, 1).payload(ike_payload(70));
                   return std::vector<Step>{forwarded(in, to_backend(in, be(env, b), c), b)};
                 },
                 {{IKELB_EV_FAILOVER, 1}},
                 nullptr});

  all.push_back({"IdleExpiredAffinityIsRehashed",
                 "an entry older than the idle timeout is ignored: the client goes where Maglev "
                 "says now and is re-pinned there",
                 [](Env& env) { env.dp.set_settings({.affinity_idle_ns = 30'000'000'000ull}); },
                 [](Env& env) {
                   IpAddr c = find_client(
                       env, kVs4, [](uint32_t b) { return b != 2; }, 200);
                   env.bed.pin(kVs4, to_lb(c), 2, 60'000'000'000ull);
                   uint32_t b = env.bed.predict(kVs4, to_lb(c));
                   Frame in = from_client(c, kVip4).udp(500, 500).payload(ike_payload(70));
                   return std::vector<Step>{forwarded(in, to_backend(in, be(env, b), c), b)};
                 },
                 {{IKELB_EV_AFFINITY_EXPIRED, 1}},
                 [](Env& env) {
                   IpAddr c = find_client(
                       env, kVs4, [](uint32_t b) { return b != 2; }, 200);
                   auto a = env.dp.affinity(kVs4, to_lb(c));
                   ASSERT_TRUE(a);
                   EXPECT_EQ(a->backend_id, env.bed.predict(kVs4, to_lb(c)));
                 }});

  all.push_back({"RecentAffinityWithinTimeoutIsKept",
                 "the same pinned entry seen 5 s ago (timeout 30 s) is honoured, even against the "
                 "Maglev choice",
                 [](Env& env) { env.dp.set_settings({.affinity_idle_ns = 30'000'000'000ull}); },
                 [](Env& env) {
                   IpAddr c = find_client(
                       env, kVs4, [](uint32_t b) { return b != 2; }, 200);
                   env.bed.pin(kVs4, to_lb(c), 2, 5'000'000'000ull);
                   Frame in = from_client(c, kVip4).udp(500, 500).payload(ike_payload(70));
                   return std::vector<Step>{forwarded(in, to_backend(in, be(env, 2), c), 2)};
                 },
                 {{IKELB_EV_AFFINITY_HIT, 1}},
                 nullptr});

  all.push_back({"AffinitySeenAfterThisCpuReadTheClockIsKept",
                 "an entry another CPU refreshed after this one read the clock (last seen later "
                 "than `now`) is recent, not idle for 2^64 ns: the client stays on its draining "
                 "backend",
                 [](Env& env) {
                   env.dp.set_settings({.affinity_idle_ns = 30'000'000'000ull});
                   env.bed.set_state(2, IKELB_BACKEND_DRAINING);
                 },
                 [](Env& env) {
                   IpAddr c = client4(14);
                   env.bed.pin(kVs4, to_lb(c), 2, -1'000'000'000);
                   Frame in = from_client(c, kVip4).udp(4500, 4500).payload(ike_payload(70));
                   return std::vector<Step>{forwarded(in, to_backend(in, be(env, 2), c), 2)};
                 },
                 {{IKELB_EV_AFFINITY_HIT, 1}},
                 nullptr});

  all.push_back({"NoNeighbourYetLeavesTheRewrittenPacketToTheKernel",
                 "a backend with no ARP entry: the rewritten packet is passed (TTL and MACs "
                 "unchanged) so the kernel resolves the neighbour and forwards it",
                 nullptr,
                 [](Env& env) {
                   IpAddr c = client4(13);
                   env.bed.pin(kVs4, to_lb(c), kNoNeighBackend);
                   Frame in = from_client(c, kVip4).udp(500, 500).payload(ike_payload(40));
                   Frame out = Frame(in).ipv4(c, ip("10.0.0.14"));
                   return std::vector<Step>{
                       forwarded(in, out, kNoNeighBackend, IKELB_OUT_FWD_KERNEL_NEIGH)};
                 },
                 {{IKELB_EV_AFFINITY_HIT, 1}},
                 nullptr});

  all.push_back(
      {"LongerPacketsThanTheCachedNextHopAllowedAskTheFibAgain",
       "gateway port MTU 1400: after a short packet has cached the backend's next hop, a "
       "1500-byte one still gets the FIB's MTU verdict (left to the kernel, rewritten), and "
       "short ones keep being redirected",
       [](Env&) { sh("ip link set gw0 mtu 1400"); },
       [](Env& env) {
         IpAddr c = client4(17);
         env.bed.pin(kVs4, to_lb(c), 0);
         Frame small = from_client(c, kVip4).udp(4500, 4500).payload(ike_payload(200));
         Frame big = from_client(c, kVip4).udp(4500, 4500).payload(ike_payload(1472));
         return std::vector<Step>{
             forwarded(small, to_backend(small, be(env, 0), c), 0),
             forwarded(big, to_backend(big, be(env, 0), c, false), 0, IKELB_OUT_FWD_KERNEL_FIB),
             forwarded(small, to_backend(small, be(env, 0), c), 0)};
       },
       {{IKELB_EV_AFFINITY_HIT, 3}},
       nullptr});

  all.push_back(
      {"LongerRepliesThanTheCachedNextHopAllowedAskTheFibAgain",
       "client port MTU 1400: after a short reply has cached the client's next hop, a 1500-byte "
       "reply still gets the FIB's MTU verdict (left to the kernel, source rewritten), and short "
       "ones keep being redirected",
       [](Env&) { sh("ip link set cli0 mtu 1400"); },
       [](Env& env) {
         IpAddr c = client4(19);
         Frame small = from_backend(be(env, 1), c).udp(4500, 4500).payload(ike_payload(200));
         Frame big = from_backend(be(env, 1), c).udp(4500, 4500).payload(ike_payload(1472));
         Step to_kernel = {big.build(),
                           Port::kGateway,
                           XDP_PASS,
                           Frame(big).ipv4(kVip4, c).build(),
                           IKELB_OUT_FWD_KERNEL_FIB,
                           std::pair{uint32_t{1}, uint32_t{IKELB_DIR_TO_CLIENT}}};
         return std::vector<Step>{replied(small, to_client(small, kVip4, c), 1), to_kernel,
                                  replied(small, to_client(small, kVip4, c), 1)};
       },
       {},
       nullptr});

  all.push_back({"OneArmedBackendUsesXdpTx",
                 "a backend behind the port the packet came in on is reached with XDP_TX",
                 nullptr,
                 [](Env& env) {
                   IpAddr c = client4(14);
                   env.bed.pin(kVs4, to_lb(c), kOneArmBackend);
                   Frame in = from_client(c, kVip4).udp(500, 500).payload(ike_payload(40));
                   Frame out = Frame(in)
                                   .eth(kClientPortMac, mac("02:00:00:00:c0:50"))
                                   .ttl(63)
                                   .ipv4(c, ip("198.51.100.50"));
                   return std::vector<Step>{forwarded(in, out, kOneArmBackend, IKELB_OUT_FWD_TX)};
                 },
                 {{IKELB_EV_AFFINITY_HIT, 1}},
                 nullptr});

  all.push_back(
      {"ExpiringTtlIsLeftToTheKernel",
       "TTL 1 / hop limit 1 to the VIP: untouched, the kernel answers time exceeded",
       nullptr,
       [](Env&) {
         return std::vector<Step>{
             untouched(from_client(client4(15), kVip4)
                           .ttl(1)
                           .udp(500, 500)
                           .payload(ike_payload(30))
                           .build(),
                       IKELB_OUT_PASS_TTL_EXPIRED),
             untouched(
                 from_client(client6(15), kVip6).ttl(1).esp(5, 5).payload(ike_payload(30)).build(),
                 IKELB_OUT_PASS_TTL_EXPIRED)};
       },
       {},
       nullptr});

  all.push_back(
      {"NoLiveBackendDrops",
       "every backend of the virtual server down: dropped and counted",
       [](Env& env) {
         for (uint32_t b = 0; b < 3; b++) env.bed.set_state(b, IKELB_BACKEND_DOWN);
       },
       [](Env&) {
         return std::vector<Step>{
             dropped(from_client(client4(16), kVip4).udp(500, 500).payload(ike_payload(30)).build(),
                     IKELB_OUT_DROP_NO_BACKEND)};
       },
       {{IKELB_EV_AFFINITY_MISS, 1}},
       nullptr});
  return all;
}

// --- The runner -------------------------------------------------------------------------------

class DatapathTest : public ::testing::TestWithParam<Case> {};

TEST_P(DatapathTest, Fixture) {
  run_case(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Cases, DatapathTest, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

// The next-hop caches, read back and exercised: one sandbox and data path per test, the thread
// kept on one CPU (the caches are per CPU).
class NextHopCache : public ::testing::Test {
 protected:
  void SetUp() override { stay_on_this_cpu(); }

  // This CPU's entry of cache `map` under `key`; a failure if there is none.
  ikelb_nexthop this_cpu_entry(std::string_view map, const void* key) {
    std::vector<ikelb_nexthop> per_cpu(static_cast<size_t>(libbpf_num_possible_cpus()));
    EXPECT_EQ(bpf_map_lookup_elem(dp.map_fd(map), key, per_cpu.data()), 0)
        << "no cached next hop in " << map;
    return per_cpu.at(static_cast<size_t>(sched_getcpu()));
  }

  // Once the cache entry has expired, `frame` arriving on `ingress` is redirected as `expected`.
  void expect_redirected_after_ttl(const Bytes& frame, uint32_t ingress, const Bytes& expected) {
    std::this_thread::sleep_for(std::chrono::nanoseconds(2 * IKELB_NEXTHOP_TTL_NS));
    XdpResult r = run_xdp(dp.prog_fd(), frame, ingress);
    ASSERT_EQ(r.verdict, XDP_REDIRECT);
    EXPECT_EQ(describe_diff(expected, r.frame), "");
  }

  Sandbox sandbox = Sandbox::create();
  Datapath dp{
      Datapath::Options{.table_slots = 2 * kTableSize, .affinity_entries = 65536, .pin_dir = ""}};
  Testbed bed{dp, sandbox};
};

Mac to_mac(const uint8_t (&bytes)[6]) {
  Mac m;
  std::copy(std::begin(bytes), std::end(bytes), m.bytes.begin());
  return m;
}

// The forward path caches a backend's next hop per CPU for IKELB_NEXTHOP_TTL_NS: the entry holds
// what the FIB said, and a neighbour change reaches the backend's traffic once it expires.
TEST_F(NextHopCache, HoldsTheFibAnswerAndFollowsANeighbourChangeAfterItsTtl) {
  const IpAddr c = client4(18);
  bed.pin(kVs4, to_lb(c), 0);
  const TestbedBackend& gw1 = bed.backend(0);
  Frame in = from_client(c, kVip4).udp(4500, 4500).payload(ike_payload(100));
  const Bytes frame = in.build();

  XdpResult r = run_xdp(dp.prog_fd(), frame, sandbox.client_ifindex);
  ASSERT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(describe_diff(to_backend(in, gw1, c).build(), r.frame), "");

  const uint32_t key = 0;
  const ikelb_nexthop nh = this_cpu_entry(IKELB_MAP_NEXTHOPS, &key);
  EXPECT_EQ(nh.ingress_ifindex, sandbox.client_ifindex);
  EXPECT_EQ(nh.egress_ifindex, sandbox.gateway_ifindex);
  EXPECT_EQ(nh.ok_len, frame.size() - 14);
  EXPECT_EQ(to_mac(nh.dmac), mac(gw1.mac));
  EXPECT_EQ(to_mac(nh.smac), kGatewayPortMac);
  const uint64_t now = monotonic_ns();
  EXPECT_GT(nh.expires_ns, now);
  EXPECT_LE(nh.expires_ns, now + IKELB_NEXTHOP_TTL_NS);

  // The gateway's MAC changes (a replaced NIC, a failover of its own).
  sh("ip neigh replace " + gw1.addr.str() + " lladdr 02:00:00:00:b0:99 dev gw0 nud permanent");
  expect_redirected_after_ttl(
      frame, sandbox.client_ifindex,
      Frame(to_backend(in, gw1, c)).eth(kGatewayPortMac, mac("02:00:00:00:b0:99")).build());
}

// Replies: the next hop towards a client is cached by client address, the same way.
TEST_F(NextHopCache, RepliesCacheTheClientsNextHopAndFollowANeighbourChange) {
  const IpAddr c = client4(20);
  Frame reply = from_backend(bed.backend(2), c).esp(0x01020304, 7).payload(ike_payload(120));
  const Bytes frame = reply.build();

  XdpResult r = run_xdp(dp.prog_fd(), frame, sandbox.gateway_ifindex);
  ASSERT_EQ(r.verdict, XDP_REDIRECT);
  EXPECT_EQ(describe_diff(to_client(reply, kVip4, c).build(), r.frame), "");

  ikelb_nexthop_key key{};
  key.addr = to_lb(c).addr;
  key.family = IKELB_AF_INET;
  const ikelb_nexthop nh = this_cpu_entry(IKELB_MAP_CLIENT_NEXTHOPS, &key);
  EXPECT_EQ(nh.ingress_ifindex, sandbox.gateway_ifindex);
  EXPECT_EQ(nh.egress_ifindex, sandbox.client_ifindex);
  EXPECT_EQ(nh.ok_len, frame.size() - 14);
  EXPECT_EQ(to_mac(nh.dmac), kClientRouterMac);
  EXPECT_EQ(to_mac(nh.smac), kClientPortMac);

  // The clients' router is replaced.
  sh("ip neigh replace 198.51.100.2 lladdr 02:00:00:00:c0:99 dev cli0 nud permanent");
  expect_redirected_after_ttl(
      frame, sandbox.gateway_ifindex,
      Frame(to_client(reply, kVip4, c)).eth(kClientPortMac, mac("02:00:00:00:c0:99")).build());
}

}  // namespace
}  // namespace ikelb::test
