// The internet edge, as table-driven XDP fixtures (fixture.h): the reverse-path check of replies
// and of client sources, ICMP errors about VIP traffic in both directions, and the IKE_SA_INIT
// limiter. Each case runs in its own process, network namespace and freshly loaded object.
#include "fixture.h"

namespace ikelb::test {
namespace {

const IpAddr kRouter4 = ip("192.0.2.1");        // a router on the client side
const IpAddr kRouter6 = ip("2001:db8:200::1");  // likewise, IPv6

Frame init_request(const IpAddr& client, const IpAddr& vip, uint64_t spi = 0x1111) {
  return from_client(client, vip).udp(500, 500).payload(ike(spi, 0, kIkeSaInit, kFlagI, false));
}

Step spoofed(const Frame& in, Port port = Port::kClient) {
  return dropped(in.build(), IKELB_OUT_DROP_REVERSE_PATH, port);
}

// A packet as ikelb sent it towards a client: from the VIP, TTL already decremented.
Frame vip_to_client(const IpAddr& vip, const IpAddr& client) {
  Frame f;
  f.eth(kClientPortMac, kClientRouterMac);
  if (client.is_v4())
    f.ipv4(vip, client).ip_id(0x4321).dont_fragment();
  else
    f.ipv6(vip, client);
  return f.ttl(63);
}

// `sent` with the quoted packet's source (or destination) address replaced, its UDP checksum
// kept as it was: what the data path must make of a quote (icmp.h says why).
Bytes requote(const Frame& sent, const IpAddr& src, const IpAddr& dst, size_t max) {
  const Bytes orig = sent.build();
  auto parsed = parse_frame(orig);
  Frame f = sent;
  if (src.is_v4())
    f.ipv4(src, dst);
  else
    f.ipv6(src, dst);
  if (parsed->udp) f.udp_checksum(parsed->udp->checksum);
  return ip_packet(f.build(), max);
}

// An ICMP error from a client-side router about `quoted` (a VIP -> client packet).
Frame error_to_vip(const IpAddr& vip, uint8_t type, uint8_t code, uint32_t rest,
                   const Bytes& quote) {
  return from_client(vip.is_v4() ? kRouter4 : kRouter6, vip).icmp(type, code, rest, quote);
}

std::vector<Case> edge_cases() {
  std::vector<Case> all;

  // --- 1. Reverse path ----------------------------------------------------------------------

  all.push_back(
      {"SpoofedRepliesFromTheClientSideAreDropped",
       "a backend's address as source (UDP 500, UDP 4500, ESP; IPv4 and IPv6) arriving on the "
       "client port is dropped, never translated; the same packets from the gateway port are",
       nullptr,
       [](Env& env) {
         std::vector<Step> steps;
         for (uint32_t b : {0u, 3u}) {
           IpAddr c = b == 0 ? client4(30) : client6(30);
           IpAddr vip = b == 0 ? kVip4 : kVip6;
           Frame ike500 = from_backend(be(env, b), c).udp(500, 500).payload(ike_payload(80));
           Frame ike4500 = from_backend(be(env, b), c).udp(4500, 4500).payload(ike_payload(90));
           Frame esp = from_backend(be(env, b), c).esp(0xc0000001, 5).payload(ike_payload(100));
           for (const Frame* f : {&ike500, &ike4500, &esp}) steps.push_back(spoofed(*f));
           for (const Frame* f : {&ike500, &ike4500, &esp})
             steps.push_back(replied(*f, to_client(*f, vip, c), b));
         }
         return steps;
       },
       {},
       nullptr});

  all.push_back(
      {"SpoofedReplyFragmentIsDropped",
       "after the first fragment of a real reply taught the data path its datagram, a later "
       "fragment of it arriving on the client port is dropped; from the gateway port it is "
       "translated",
       nullptr,
       [](Env& env) {
         std::vector<Step> steps;
         for (uint32_t b : {0u, 3u}) {
           IpAddr c = b == 0 ? client4(31) : client6(31);
           IpAddr vip = b == 0 ? kVip4 : kVip6;
           Frame big = from_backend(be(env, b), c).udp(4500, 4500).payload(ike_payload(1800));
           auto ins = big.build_fragments(1232);
           auto outs = to_client(big, vip, c).build_fragments(1232);
           std::pair counted{b, uint32_t{IKELB_DIR_TO_CLIENT}};
           steps.push_back(
               {ins[0], Port::kGateway, XDP_REDIRECT, outs[0], IKELB_OUT_FWD_REDIRECT, counted});
           steps.push_back(dropped(ins[1], IKELB_OUT_DROP_REVERSE_PATH));
           steps.push_back(
               {ins[1], Port::kGateway, XDP_REDIRECT, outs[1], IKELB_OUT_FWD_REDIRECT, counted});
         }
         return steps;
       },
       {{IKELB_EV_REPLY_FRAGMENT_LEARNED, 2}},
       nullptr});

  all.push_back(
      {"WithoutTheReversePathCheckASpoofedReplyIsReflected",
       "negative control (edge.reverse_path_check off): the spoofed reply of the first case is "
       "translated and sent back out from the VIP: the reflector the check closes",
       [](Env& env) { env.dp.set_edge({.reverse_path = IKELB_RP_OFF, .pad = 0}); },
       [](Env& env) {
         IpAddr c = client4(32);
         Frame in = from_backend(be(env, 0), c).udp(500, 500).payload(ike_payload(80));
         return std::vector<Step>{{in.build(), Port::kClient, XDP_TX,
                                   to_client(in, kVip4, c).build(), IKELB_OUT_FWD_TX,
                                   std::pair{uint32_t{0}, uint32_t{IKELB_DIR_TO_CLIENT}}}};
       },
       {},
       nullptr});

  // One arm: the backend sits behind the client port, so the route check cannot tell it from the
  // internet; strict_mac also requires the route's next-hop MAC as the frame's source.
  auto one_arm = [](bool internet_dropped) {
    return [=](Env& env) {
      IpAddr c = client4(33);
      auto reply = [&](const Mac& from) {
        return from_backend(be(env, kOneArmBackend), c)
            .eth(from, kClientPortMac)
            .udp(4500, 4500)
            .payload(ike_payload(60));
      };
      Frame real = reply(mac("02:00:00:00:c0:50")), forged = reply(kClientRouterMac);
      auto sent = [&](const Frame& f) {
        return Step{f.build(),        Port::kClient,
                    XDP_TX,           to_client(f, kVip4, c).build(),
                    IKELB_OUT_FWD_TX, std::pair{kOneArmBackend, uint32_t{IKELB_DIR_TO_CLIENT}}};
      };
      return std::vector<Step>{sent(real), internet_dropped ? spoofed(forged) : sent(forged)};
    };
  };
  all.push_back({"OneArmStrictCannotTellTheInternetFromTheBackend",
                 "one-armed backend, strict (default): a forged reply from the internet router's "
                 "MAC passes, like the backend's own (why strict_mac exists)",
                 nullptr,
                 one_arm(false),
                 {},
                 nullptr});
  all.push_back({"OneArmStrictMacDropsAReplyNotFromTheBackendsMac",
                 "one-armed backend, strict_mac: the backend's reply passes, the same reply from "
                 "the internet router's MAC is dropped",
                 [](Env& env) { env.dp.set_edge({.reverse_path = IKELB_RP_STRICT_MAC, .pad = 0}); },
                 one_arm(true),
                 {},
                 nullptr});

  all.push_back(
      {"PacketsToAVipFromABackendOrVipAddressAreDropped",
       "a client packet whose source is a backend's or a VIP's address is forged: dropped, and "
       "no affinity entry is made for it",
       nullptr,
       [](Env&) {
         auto drop = [](const Frame& f) {
           return dropped(f.build(), IKELB_OUT_DROP_SPOOFED_CLIENT);
         };
         return std::vector<Step>{
             drop(from_client(ip("10.0.0.11"), kVip4).udp(500, 500).payload(ike_payload(40))),
             drop(from_client(kVip4, kVip4).udp(4500, 4500).payload(ike_payload(40))),
             drop(from_client(ip("fd00::12"), kVip6).esp(0x1000, 1).payload(ike_payload(40))),
             drop(from_client(kVip6, kVip6).udp(500, 500).payload(ike_payload(40)))};
       },
       {{IKELB_EV_AFFINITY_MISS, 4}},
       [](Env& env) {
         EXPECT_FALSE(env.dp.affinity(kVs4, IpAddress::must_parse("10.0.0.11")));
         EXPECT_FALSE(env.dp.affinity(kVs4, IpAddress::must_parse("203.0.113.10")));
         EXPECT_FALSE(env.dp.affinity(kVs6, IpAddress::must_parse("fd00::12")));
       }});

  // --- 2. ICMP errors -----------------------------------------------------------------------

  all.push_back(
      {"IcmpErrorsAboutVipTrafficGoToTheClientsBackend",
       "fragmentation needed / packet too big / time exceeded to the VIP, quoting a VIP -> "
       "client packet (UDP 4500, UDP 500, ESP): outer destination and quoted source become the "
       "client's backend (its affinity entry, else the Maglev choice, which creates no entry); "
       "outer, quoted IPv4 and ICMP checksums right, quoted UDP checksum kept",
       nullptr,
       [](Env& env) {
         std::vector<Step> steps;
         // IPv4, a pinned client whose Maglev choice is another backend.
         IpAddr c = find_client(
             env, kVs4, [](uint32_t b) { return b != 2; }, 300);
         env.bed.pin(kVs4, to_lb(c), 2);
         IpAddr gw = to_test(be(env, 2).addr);
         Frame big = vip_to_client(kVip4, c).udp(4500, 4500).payload(ike_payload(1400));
         Frame in = error_to_vip(kVip4, 3, 4, 1300, ip_packet(big.build(), 548));
         Frame out =
             to_backend(in, be(env, 2), kRouter4).icmp(3, 4, 1300, requote(big, gw, c, 548));
         steps.push_back(forwarded(in, out, 2));
         // Time exceeded about UDP 500 to the same client.
         Frame init = vip_to_client(kVip4, c).udp(500, 500).payload(ike_payload(200));
         in = error_to_vip(kVip4, 11, 0, 0, ip_packet(init.build(), 28));
         out = to_backend(in, be(env, 2), kRouter4).icmp(11, 0, 0, requote(init, gw, c, 28));
         steps.push_back(forwarded(in, out, 2));
         // IPv4 ESP, an unpinned client: the Maglev choice.
         IpAddr u = client4(301);
         uint32_t mb = env.bed.predict(kVs4, to_lb(u));
         Frame esp = vip_to_client(kVip4, u).esp(0xc0010203, 9).payload(ike_payload(1400));
         in = error_to_vip(kVip4, 3, 4, 1300, ip_packet(esp.build(), 548));
         out = to_backend(in, be(env, mb), kRouter4)
                   .icmp(3, 4, 1300, requote(esp, to_test(be(env, mb).addr), u, 548));
         steps.push_back(forwarded(in, out, mb));
         // IPv6 packet too big, a pinned client.
         IpAddr c6 = client6(302);
         env.bed.pin(kVs6, to_lb(c6), 4);
         Frame big6 = vip_to_client(kVip6, c6).udp(4500, 4500).payload(ike_payload(1400));
         in = error_to_vip(kVip6, 2, 0, 1280, ip_packet(big6.build(), 1232));
         out = to_backend(in, be(env, 4), kRouter6)
                   .icmp(2, 0, 1280, requote(big6, to_test(be(env, 4).addr), c6, 1232));
         steps.push_back(forwarded(in, out, 4));
         return steps;
       },
       {{IKELB_EV_ICMP_TO_BACKEND, 4}},
       [](Env& env) { EXPECT_FALSE(env.dp.affinity(kVs4, to_lb(client4(301)))); }});

  all.push_back(
      {"BackendIcmpErrorsAboutClientPacketsLeaveFromTheVip",
       "a backend's port unreachable about a client's packet (IPv4 and IPv6) leaves with the "
       "VIP as outer source and quoted destination; arriving on the client port it is a forgery "
       "and dropped",
       nullptr,
       [](Env& env) {
         std::vector<Step> steps;
         for (uint32_t b : {0u, 3u}) {
           IpAddr c = b == 0 ? client4(40) : client6(40);
           IpAddr vip = b == 0 ? kVip4 : kVip6;
           IpAddr gw = to_test(be(env, b).addr);
           Frame got = from_client(c, gw).ttl(63).udp(4500, 4500).payload(ike_payload(120));
           uint8_t type = b == 0 ? 3 : 1, code = b == 0 ? 3 : 4;
           Frame in = from_backend(be(env, b), c).icmp(type, code, 0, ip_packet(got.build(), 96));
           Frame out = to_client(in, vip, c).icmp(type, code, 0, requote(got, c, vip, 96));
           steps.push_back(replied(in, out, b));
           steps.push_back(spoofed(in));
         }
         return steps;
       },
       {{IKELB_EV_ICMP_TO_CLIENT, 2}},
       nullptr});

  all.push_back(
      {"OtherIcmpIsLeftAlone",
       "echo to a VIP (IPv4, IPv6), errors quoting other traffic (another source, TCP, a port "
       "that is no service), a backend's echo reply and ICMP to no VIP pass untouched",
       nullptr,
       [](Env& env) {
         IpAddr c = client4(50);
         auto quote_of = [&](Frame f) { return ip_packet(f.build(), 48); };
         Frame other = Frame(vip_to_client(kVip4, c))
                           .ipv4(ip("203.0.113.99"), c)
                           .udp(500, 500)
                           .payload(ike_payload(40));
         Frame tcp = vip_to_client(kVip4, c).l4(6, ike_payload(40));
         Frame dns = vip_to_client(kVip4, c).udp(53, 5353).payload(ike_payload(40));
         auto other_icmp = [](const Frame& f, Port port = Port::kClient) {
           return untouched(f.build(), IKELB_OUT_PASS_ICMP_OTHER, port);
         };
         return std::vector<Step>{
             other_icmp(from_client(c, kVip4).icmp(8, 0, 0x00010001, ike_payload(32))),
             other_icmp(from_client(client6(50), kVip6).icmp(128, 0, 0x00010001, ike_payload(32))),
             other_icmp(error_to_vip(kVip4, 3, 4, 1300, quote_of(other))),
             other_icmp(error_to_vip(kVip4, 3, 4, 1300, quote_of(tcp))),
             other_icmp(error_to_vip(kVip4, 3, 4, 1300, quote_of(dns))),
             other_icmp(from_backend(be(env, 0), c).icmp(0, 0, 0x00010001, ike_payload(32)),
                        Port::kGateway),
             untouched(error_to_vip(ip("203.0.113.99"), 3, 4, 1300, quote_of(other)).build(),
                       IKELB_OUT_PASS_NOT_OURS)};
       },
       {},
       nullptr});

  all.push_back(
      {"TruncatedIcmpQuotesAreDropped",
       "ICMP errors to a VIP with a quote cut inside the IP header, inside the UDP ports, an "
       "IPv6 quote shorter than its header, and a message shorter than an ICMP header: dropped",
       nullptr,
       [](Env&) {
         IpAddr c = client4(51);
         Frame udp = vip_to_client(kVip4, c).udp(4500, 4500).payload(ike_payload(100));
         Frame udp6 = vip_to_client(kVip6, client6(51)).udp(4500, 4500).payload(ike_payload(100));
         auto bad = [](const Frame& f) {
           return dropped(f.build(), IKELB_OUT_DROP_ICMP_MALFORMED);
         };
         return std::vector<Step>{bad(error_to_vip(kVip4, 3, 4, 1300, ip_packet(udp.build(), 12))),
                                  bad(error_to_vip(kVip4, 3, 4, 1300, ip_packet(udp.build(), 22))),
                                  bad(error_to_vip(kVip6, 2, 0, 1280, ip_packet(udp6.build(), 30))),
                                  bad(from_client(kRouter4, kVip4).l4(1, Bytes{3, 4, 0, 0}))};
       },
       {},
       nullptr});

  // --- 3. IKE_SA_INIT limits ----------------------------------------------------------------

  all.push_back(
      {"InitRequestsOverTheSourceLimitAreDroppedUntilTheBackendAnswersIkeAuth",
       "per-source limit 1/s, burst 3: a new client's IKE_SA_INIT requests pass 3 times, then "
       "are dropped; its ESP, IKE with a responder SPI and NAT keepalives are never limited; once "
       "its backend sent it an IKE_AUTH message, its IKE_SA_INIT requests are exempt",
       [](Env& env) {
         ikelb_init_limit lim{};
         lim.source_interval_ns = 1'000'000'000ull;
         lim.source_tolerance_ns = 2'000'000'000ull;
         env.dp.set_init_limit(kVs4, lim);
       },
       [](Env& env) {
         IpAddr c = client4(60);
         uint32_t b = env.bed.predict(kVs4, to_lb(c));
         Frame init = init_request(c, kVip4);
         Step pass = forwarded(init, to_backend(init, be(env, b), c), b);
         Step limited = dropped(init.build(), IKELB_OUT_DROP_INIT_LIMIT_SOURCE);
         Frame esp =
             from_client(c, kVip4).udp(4500, 4500).esp(0xc0000007, 1).payload(ike_payload(80));
         Frame auth = from_client(c, kVip4)
                          .udp(4500, 4500)
                          .payload(ike(0x1111, 0x2222, kIkeAuth, kFlagI, true));
         Frame keepalive = from_client(c, kVip4).udp(4500, 4500).payload(Bytes{0xff});
         Frame answer = from_backend(be(env, b), c)
                            .udp(4500, 4500)
                            .payload(ike(0x1111, 0x2222, kIkeAuth, kFlagR, true));
         return std::vector<Step>{pass,
                                  pass,
                                  pass,
                                  limited,
                                  limited,
                                  forwarded(esp, to_backend(esp, be(env, b), c), b),
                                  forwarded(auth, to_backend(auth, be(env, b), c), b),
                                  forwarded(keepalive, to_backend(keepalive, be(env, b), c), b),
                                  replied(answer, to_client(answer, kVip4, c), b),
                                  pass};
       },
       {{IKELB_EV_AFFINITY_MISS, 1}, {IKELB_EV_AFFINITY_HIT, 8}},
       [](Env& env) {
         auto st = env.dp.vs_edge_stats(kVs4);
         EXPECT_EQ(st.init_admitted, 3u);
         EXPECT_EQ(st.init_limited_source, 2u);
         EXPECT_EQ(st.init_limited_total, 0u);
         auto a = env.dp.affinity(kVs4, to_lb(client4(60)));
         ASSERT_TRUE(a);
         EXPECT_EQ(a->flags, 0u) << "the IKE_AUTH answer confirms the client";
       }});

  all.push_back(
      {"ASourceBucketRefillsAtItsRate",
       "per-source limit 10/s, burst 1: the second request at once is dropped, one 150 ms later "
       "passes",
       [](Env& env) {
         ikelb_init_limit lim{};
         lim.source_interval_ns = 100'000'000ull;
         env.dp.set_init_limit(kVs4, lim);
       },
       [](Env& env) {
         IpAddr c = client4(61);
         uint32_t b = env.bed.predict(kVs4, to_lb(c));
         Frame init = init_request(c, kVip4);
         Step later = forwarded(init, to_backend(init, be(env, b), c), b);
         later.pause = std::chrono::milliseconds(150);
         return std::vector<Step>{forwarded(init, to_backend(init, be(env, b), c), b),
                                  dropped(init.build(), IKELB_OUT_DROP_INIT_LIMIT_SOURCE), later};
       },
       {{IKELB_EV_AFFINITY_MISS, 1}, {IKELB_EV_AFFINITY_HIT, 2}},
       nullptr});

  all.push_back(
      {"TheVirtualServersLimitCapsNewSourcesButNotPinnedClientsOrEsp",
       "total limit 1/s, burst 2: two new sources' IKE_SA_INIT pass, a third's is dropped; an "
       "established client's IKE_SA_INIT and a new source's ESP pass; admitted sources stay "
       "provisional",
       [](Env& env) {
         ikelb_init_limit lim{};
         lim.total_interval_ns = 1'000'000'000ull;
         lim.total_tolerance_ns = 1'000'000'000ull;
         env.dp.set_init_limit(kVs4, lim);
       },
       [](Env& env) {
         std::vector<Step> steps;
         for (int n : {70, 71}) {
           IpAddr c = client4(n);
           uint32_t b = env.bed.predict(kVs4, to_lb(c));
           Frame init = init_request(c, kVip4);
           steps.push_back(forwarded(init, to_backend(init, be(env, b), c), b));
         }
         steps.push_back(
             dropped(init_request(client4(72), kVip4).build(), IKELB_OUT_DROP_INIT_LIMIT_TOTAL));
         IpAddr pinned = client4(73);
         env.bed.pin(kVs4, to_lb(pinned), 1);
         Frame init = init_request(pinned, kVip4);
         steps.push_back(forwarded(init, to_backend(init, be(env, 1), pinned), 1));
         IpAddr fresh = client4(74);
         uint32_t b = env.bed.predict(kVs4, to_lb(fresh));
         Frame esp = from_client(fresh, kVip4).esp(0xc0000009, 1).payload(ike_payload(60));
         steps.push_back(forwarded(esp, to_backend(esp, be(env, b), fresh), b));
         return steps;
       },
       {{IKELB_EV_AFFINITY_MISS, 4}, {IKELB_EV_AFFINITY_HIT, 1}},
       [](Env& env) {
         auto st = env.dp.vs_edge_stats(kVs4);
         EXPECT_EQ(st.init_admitted, 2u);
         EXPECT_EQ(st.init_limited_total, 1u);
         auto a = env.dp.affinity(kVs4, to_lb(client4(70)));
         ASSERT_TRUE(a);
         EXPECT_EQ(a->flags, uint32_t{IKELB_AFFINITY_PROVISIONAL});
         auto e = env.dp.affinity(kVs4, to_lb(client4(74)));
         ASSERT_TRUE(e);
         EXPECT_EQ(e->flags, 0u);
         EXPECT_FALSE(env.dp.affinity(kVs4, to_lb(client4(72))));
       }});

  all.push_back(
      {"IPv6SourcesShareABucketPerPrefix",
       "per-source limit 1/s, burst 1, IPv6 prefix /64: a second address of the same /64 is "
       "limited, an address of another /64 is not",
       [](Env& env) {
         ikelb_init_limit lim{};
         lim.source_interval_ns = 1'000'000'000ull;
         lim.ipv6_prefix_len = 64;
         env.dp.set_init_limit(kVs6, lim);
       },
       [](Env& env) {
         IpAddr a = ip("2001:db8:100::1"), d = ip("2001:db8:100:1::1");
         auto pass = [&](const IpAddr& c) {
           uint32_t b = env.bed.predict(kVs6, to_lb(c));
           Frame init = init_request(c, kVip6);
           return forwarded(init, to_backend(init, be(env, b), c), b);
         };
         return std::vector<Step>{pass(a),
                                  dropped(init_request(ip("2001:db8:100::2"), kVip6).build(),
                                          IKELB_OUT_DROP_INIT_LIMIT_SOURCE),
                                  pass(d)};
       },
       {{IKELB_EV_AFFINITY_MISS, 3}},
       nullptr});

  return all;
}

class EdgeTest : public ::testing::TestWithParam<Case> {};

TEST_P(EdgeTest, Fixture) {
  run_case(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Cases, EdgeTest, ::testing::ValuesIn(edge_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace ikelb::test
