// SPI routing (ebpf/spi.h), as table-driven XDP fixtures (fixture.h): a client that changed
// address reaches the gateway its SPIs name, by label (strongSwan's spi_label, spi_min/spi_max) or
// by a learned owner; packets without a gateway SPI, unknown labels and labels of dead gateways
// fall back to affinity and Maglev; forged SPIs move nobody. Each case runs in its own process,
// network namespace and freshly loaded object.
#include <cstring>

#include "fixture.h"
#include "spi_layout.h"

namespace ikelb::test {
namespace {

// The label layout of these tests: the gateway id is the IKE SPI's first byte on the wire, and
// bits 20..27 of the ESP SPI (strongSwan: spi_min = 0xc0000000 | id << 20, spi_max = that |
// 0xfffff). Label id k of a virtual server names its k-th backend (1..3).
constexpr uint64_t kIkeMask = 0xff00000000000000ull;
constexpr uint32_t kEspMask = 0x0ff00000u;

uint64_t ike_spi(uint32_t id, uint64_t random = 0x0012345678abcdefull) {
  return (uint64_t{id} << 56) | (random & ~kIkeMask);
}
uint32_t esp_spi(uint32_t id, uint32_t random = 0x5a5a5) {
  return 0xc0000000u | (id << 20) | (random & 0xfffffu);
}

uint32_t first_backend(uint32_t vs) {
  return vs == kVs4 ? 0 : 3;
}
uint32_t label_of(uint32_t vs, uint32_t backend) {
  return backend - first_backend(vs) + 1;
}

void set_routing(Env& env, uint32_t vs, uint8_t flags, uint64_t esp_idle_ns = 0) {
  ikelb_spi_routing r{};
  r.ike_mask = kIkeMask;
  r.ike_shift = 56;
  r.esp_mask = kEspMask;
  r.esp_shift = 20;
  r.flags = flags;
  r.esp_idle_ns = esp_idle_ns;
  ASSERT_EQ(bpf_map_update_elem(env.dp.map_fd(IKELB_MAP_SPI_ROUTING), &vs, &r, BPF_ANY), 0);
  if (!(flags & IKELB_SPI_LABELS)) return;
  for (uint32_t k = 1; k <= 3; k++) {
    ikelb_spi_label_key key{.vs_id = vs, .id = k};
    uint32_t backend = first_backend(vs) + k - 1;
    ASSERT_EQ(bpf_map_update_elem(env.dp.map_fd(IKELB_MAP_SPI_LABELS), &key, &backend, BPF_ANY), 0);
  }
}

// A case's set-up: SPI routing with `flags` on both virtual servers.
std::function<void(Env&)> on_both(uint8_t flags) {
  return [flags](Env& env) {
    set_routing(env, kVs4, flags);
    set_routing(env, kVs6, flags);
  };
}

ikelb_spi_owner_key owner_key(uint32_t vs, uint8_t kind, uint64_t host_spi) {
  ikelb_spi_owner_key k{};
  k.vs_id = vs;
  k.kind = kind;
  // The SPI's wire bytes, as the program copies them.
  if (kind == IKELB_SPI_IKE) {
    for (int i = 0; i < 8; i++)
      reinterpret_cast<uint8_t*>(&k.spi)[i] = static_cast<uint8_t>(host_spi >> (56 - 8 * i));
  } else {
    for (int i = 0; i < 4; i++)
      reinterpret_cast<uint8_t*>(&k.spi)[i] = static_cast<uint8_t>(host_spi >> (24 - 8 * i));
  }
  return k;
}

std::optional<ikelb_spi_owner> owner(Env& env, uint32_t vs, uint8_t kind, uint64_t spi) {
  ikelb_spi_owner_key k = owner_key(vs, kind, spi);
  ikelb_spi_owner v{};
  if (bpf_map_lookup_elem(env.dp.map_fd(IKELB_MAP_SPI_OWNERS), &k, &v) != 0) return std::nullopt;
  return v;
}

uint32_t pinned_to(Env& env, uint32_t vs, const IpAddr& client) {
  auto a = env.dp.affinity(vs, to_lb(client));
  return a ? a->backend_id : IKELB_NO_BACKEND;
}

IpAddr vip_of(uint32_t vs) {
  return vs == kVs4 ? kVip4 : kVip6;
}

// The four ways a client's packet carries its gateway's SPI.
enum class Carrier { kIke500, kIke4500, kEsp, kEspInUdp };
constexpr Carrier kCarriers[] = {Carrier::kIke500, Carrier::kIke4500, Carrier::kEsp,
                                 Carrier::kEspInUdp};

// A client's packet naming label `id` the way `how` carries it (IKE: the I flag set, so the
// gateway's SPI is the responder SPI; the initiator SPI names another id, to show it is ignored).
Frame labelled(const IpAddr& c, uint32_t vs, Carrier how, uint32_t id) {
  Frame f = from_client(c, vip_of(vs));
  uint64_t client_side = ike_spi(id % 3 + 1, 0x77);
  switch (how) {
    case Carrier::kIke500:
      return f.udp(500, 500).payload(ike(client_side, ike_spi(id), kInformational, kFlagI, false));
    case Carrier::kIke4500:
      return f.udp(4500, 4500).payload(ike(client_side, ike_spi(id), kInformational, kFlagI, true));
    case Carrier::kEsp:
      return f.esp(esp_spi(id), 7).payload(ike_payload(64));
    case Carrier::kEspInUdp:
      return f.udp(4500, 4500).esp(esp_spi(id), 7).payload(ike_payload(64));
  }
  return f;
}

// A non-default layout, set through the control plane's own code (config/spi_layout.h).
const SpiLabelLayout kControlLayout{6, 50, 18, 0x80000000u};
constexpr uint32_t kControlIds[3] = {17, 42, 63};  // of backends 1..3 of each virtual server

// A client's packet carrying an SPI that strongSwan, set up with `ikelbctl spi-config`'s values
// for gateway id `id`, could allocate: IKE (random & ~spi_mask) | spi_label, ESP within
// [spi_min, spi_max].
Frame strongswan_labelled(const IpAddr& c, uint32_t vs, Carrier how, uint32_t id) {
  StrongswanSpi s = strongswan_spi(kControlLayout, id);
  uint64_t gateway = (0x5a5a5a5a5a5a5a5aull & ~s.spi_mask) | s.spi_label;
  uint32_t esp = s.spi_min + (s.spi_max - s.spi_min) / 3;
  Frame f = from_client(c, vip_of(vs));
  switch (how) {
    case Carrier::kIke500:
      return f.udp(500, 500).payload(ike(0x1111, gateway, kInformational, kFlagI, false));
    case Carrier::kIke4500:
      return f.udp(4500, 4500).payload(ike(gateway, 0x2222, kInformational, 0, true));
    case Carrier::kEsp:
      return f.esp(esp, 7).payload(ike_payload(64));
    case Carrier::kEspInUdp:
      return f.udp(4500, 4500).esp(esp, 7).payload(ike_payload(64));
  }
  return f;
}

IpAddr client(uint32_t vs, int n) {
  return vs == kVs4 ? client4(n) : client6(n);
}

// The next client from number `n` on that Maglev places (some backend takes new clients in its
// slot or the following ones); `n` moves past it.
IpAddr placed_client(Env& env, uint32_t vs, int& n) {
  for (;; n++)
    if (env.bed.predict(vs, to_lb(client(vs, n))) != IKELB_NO_BACKEND) return client(vs, n++);
}

// The next client from number `n` on whose Maglev choice is not `backend`; `n` moves past it, so
// successive calls give distinct clients.
IpAddr client_not_on(Env& env, uint32_t vs, uint32_t backend, int& n) {
  for (;; n++)
    if (uint32_t b = env.bed.predict(vs, to_lb(client(vs, n)));
        b != backend && b != IKELB_NO_BACKEND)
      return client(vs, n++);
}

std::vector<Case> spi_cases() {
  std::vector<Case> all;

  all.push_back(
      {"LabelKeepsAMovedClientOnItsGateway",
       "a client at a new address (Maglev would pick another gateway) reaches the gateway its "
       "SPI label names, for IKE on 500 and 4500, ESP and ESP-in-UDP, IPv4 and IPv6, and its "
       "new address is pinned there",
       on_both(IKELB_SPI_LABELS),
       [](Env& env) {
         std::vector<Step> steps;
         int n = 100;
         for (uint32_t vs : {kVs4, kVs6})
           for (Carrier how : kCarriers) {
             uint32_t target = first_backend(vs) + 1;
             IpAddr c = client_not_on(env, vs, target, n);
             Frame in = labelled(c, vs, how, label_of(vs, target));
             steps.push_back(forwarded(in, to_backend(in, be(env, target), c), target));
           }
         return steps;
       },
       {{IKELB_EV_SPI_LABEL, 8}, {IKELB_EV_AFFINITY_MISS, 8}},
       [](Env& env) {
         int n = 100;
         for (uint32_t vs : {kVs4, kVs6})
           for (int i = 0; i < 4; i++) {
             uint32_t target = first_backend(vs) + 1;
             EXPECT_EQ(pinned_to(env, vs, client_not_on(env, vs, target, n)), target);
           }
       }});

  all.push_back(
      {"InitiatorFlagSelectsTheGatewaySpi",
       "with the I flag clear (the gateway started the last IKE rekey) the gateway's SPI is the "
       "initiator SPI; with it set, the responder SPI; the other SPI's label is ignored",
       on_both(IKELB_SPI_LABELS),
       [](Env& env) {
         std::vector<Step> steps;
         int n = 200;
         for (uint32_t vs : {kVs4, kVs6}) {
           uint32_t target = first_backend(vs) + 2, other = first_backend(vs);
           uint32_t t = label_of(vs, target), o = label_of(vs, other);
           IpAddr c1 = client_not_on(env, vs, target, n);
           Frame clear = from_client(c1, vip_of(vs))
                             .udp(4500, 4500)
                             .payload(ike(ike_spi(t), ike_spi(o), kInformational, 0, true));
           steps.push_back(forwarded(clear, to_backend(clear, be(env, target), c1), target));
           IpAddr c2 = client_not_on(env, vs, target, n);
           Frame set = from_client(c2, vip_of(vs))
                           .udp(4500, 4500)
                           .payload(ike(ike_spi(o), ike_spi(t), kInformational, kFlagI, true));
           steps.push_back(forwarded(set, to_backend(set, be(env, target), c2), target));
         }
         return steps;
       },
       {{IKELB_EV_SPI_LABEL, 4}, {IKELB_EV_AFFINITY_MISS, 4}},
       nullptr});

  all.push_back(
      {"PacketsWithoutAGatewaySpiFallBack",
       "an IKE_SA_INIT request (responder SPI 0) and a NAT keepalive go by Maglev; a labelled "
       "IKE datagram's first fragment is routed by its label and pins the client, so the later "
       "fragments (no SPI) follow it by affinity",
       on_both(IKELB_SPI_LABELS),
       [](Env& env) {
         std::vector<Step> steps;
         int n = 300;
         for (uint32_t vs : {kVs4, kVs6}) {
           IpAddr c1 = client(vs, n++);
           uint32_t m1 = env.bed.predict(vs, to_lb(c1));
           Frame init =
               from_client(c1, vip_of(vs))
                   .udp(500, 500)
                   .payload(ike(ike_spi(label_of(vs, m1) % 3 + 1), 0, kIkeSaInit, kFlagI, false));
           steps.push_back(forwarded(init, to_backend(init, be(env, m1), c1), m1));
           IpAddr c2 = client(vs, n++);
           uint32_t m2 = env.bed.predict(vs, to_lb(c2));
           Frame keepalive = from_client(c2, vip_of(vs)).udp(4500, 4500).payload({0xff});
           steps.push_back(forwarded(keepalive, to_backend(keepalive, be(env, m2), c2), m2));

           uint32_t target = first_backend(vs) + 1;
           IpAddr c3 = client_not_on(env, vs, target, n);
           Frame big = from_client(c3, vip_of(vs))
                           .udp(4500, 4500)
                           .payload(ike(ike_spi(3), ike_spi(label_of(vs, target)), kInformational,
                                        kFlagI, true, 1800));
           add_fragments(steps, big, to_backend(big, be(env, target), c3), 1232, Port::kClient,
                         target, IKELB_DIR_TO_BACKEND);
         }
         return steps;
       },
       // Per family: 2 Maglev placements, the first fragment by label, later fragments by
       // affinity (1800 bytes in 1232-byte packets: 2 fragments).
       {{IKELB_EV_AFFINITY_MISS, 6}, {IKELB_EV_SPI_LABEL, 2}, {IKELB_EV_AFFINITY_HIT, 2}},
       nullptr});

  all.push_back(
      {"LabelOfAGatewayThatCannotTakeTheClient",
       "a label naming a gateway that is down, or an id no gateway has, falls back to Maglev and "
       "is counted; a draining gateway still takes its labelled clients (their SA lives there)",
       [](Env& env) {
         set_routing(env, kVs4, IKELB_SPI_LABELS);
         set_routing(env, kVs6, IKELB_SPI_LABELS);
         env.bed.set_state(1, IKELB_BACKEND_DOWN);
         env.bed.set_state(4, IKELB_BACKEND_DOWN);
         env.bed.set_state(2, IKELB_BACKEND_DRAINING);
         env.bed.set_state(5, IKELB_BACKEND_DRAINING);
       },
       [](Env& env) {
         std::vector<Step> steps;
         int n = 400;
         for (uint32_t vs : {kVs4, kVs6}) {
           uint32_t down = first_backend(vs) + 1, draining = first_backend(vs) + 2;
           IpAddr c1 = placed_client(env, vs, n);
           uint32_t m1 = env.bed.predict(vs, to_lb(c1));
           Frame to_down = labelled(c1, vs, Carrier::kEsp, label_of(vs, down));
           steps.push_back(forwarded(to_down, to_backend(to_down, be(env, m1), c1), m1));
           IpAddr c2 = placed_client(env, vs, n);
           uint32_t m2 = env.bed.predict(vs, to_lb(c2));
           Frame unknown = labelled(c2, vs, Carrier::kIke4500, 9);
           steps.push_back(forwarded(unknown, to_backend(unknown, be(env, m2), c2), m2));
           IpAddr c3 = placed_client(env, vs, n);
           Frame to_draining = labelled(c3, vs, Carrier::kEspInUdp, label_of(vs, draining));
           steps.push_back(
               forwarded(to_draining, to_backend(to_draining, be(env, draining), c3), draining));
         }
         return steps;
       },
       {{IKELB_EV_SPI_LABEL_DOWN, 2},
        {IKELB_EV_SPI_UNKNOWN, 2},
        {IKELB_EV_SPI_LABEL, 2},
        {IKELB_EV_AFFINITY_MISS, 6}},
       nullptr});

  all.push_back(
      {"ForgedSpiMovesNobody",
       "a packet with another gateway's label from a pinned source is delivered to that gateway "
       "(whose authentication drops a forgery) but the source stays pinned where it was; a "
       "labelled packet from a gateway's address is dropped as spoofed",
       [](Env& env) {
         set_routing(env, kVs4, IKELB_SPI_LABELS);
         set_routing(env, kVs6, IKELB_SPI_LABELS);
         env.bed.pin(kVs4, to_lb(client4(500)), 0);
         env.bed.pin(kVs6, to_lb(client6(500)), 3);
       },
       [](Env& env) {
         std::vector<Step> steps;
         for (uint32_t vs : {kVs4, kVs6}) {
           IpAddr c = vs == kVs4 ? client4(500) : client6(500);
           uint32_t pinned = first_backend(vs), victim = first_backend(vs) + 2;
           Frame forged = labelled(c, vs, Carrier::kEspInUdp, label_of(vs, victim));
           steps.push_back(forwarded(forged, to_backend(forged, be(env, victim), c), victim));
           Frame own = from_client(c, vip_of(vs)).udp(4500, 4500).payload({0xff});
           steps.push_back(forwarded(own, to_backend(own, be(env, pinned), c), pinned));
           IpAddr gw = to_test(be(env, first_backend(vs) + 1).addr);
           steps.push_back(dropped(labelled(gw, vs, Carrier::kEsp, label_of(vs, victim)).build(),
                                   IKELB_OUT_DROP_SPOOFED_CLIENT));
         }
         return steps;
       },
       {{IKELB_EV_SPI_LABEL, 2},
        {IKELB_EV_SPI_AFFINITY_KEPT, 2},
        {IKELB_EV_AFFINITY_HIT, 2},
        {IKELB_EV_AFFINITY_MISS, 2}},
       [](Env& env) {
         EXPECT_EQ(pinned_to(env, kVs4, client4(500)), 0u);
         EXPECT_EQ(pinned_to(env, kVs6, client6(500)), 3u);
         EXPECT_EQ(pinned_to(env, kVs4, to_test(be(env, 1).addr)), IKELB_NO_BACKEND);
       }});

  // --- Learned owners (gateways that cannot label) ------------------------------------------

  all.push_back(
      {"LearnedOwnerKeepsAMovedClientOnItsGateway",
       "the gateway SPIs of a client's ESP and IKE (I flag set: responder SPI; clear: initiator "
       "SPI) routed by Maglev or affinity are learned; from new addresses the same SPIs reach "
       "that gateway and pin the new addresses",
       on_both(IKELB_SPI_LEARN),
       [](Env& env) {
         std::vector<Step> steps;
         int n = 610;
         for (uint32_t vs : {kVs4, kVs6}) {
           IpAddr c1 = client(vs, 600);
           uint32_t gw = env.bed.predict(vs, to_lb(c1));
           uint64_t s = vs == kVs4 ? 0x11 : 0x22;
           Frame esp = from_client(c1, vip_of(vs)).udp(4500, 4500).esp(0xd000 + s, 1);
           esp.payload(ike_payload(40));
           Frame auth = from_client(c1, vip_of(vs))
                            .udp(4500, 4500)
                            .payload(ike(0x5100 + s, 0x6100 + s, kIkeAuth, kFlagI, true));
           Frame rekeyed = from_client(c1, vip_of(vs))
                               .udp(4500, 4500)
                               .payload(ike(0x7100 + s, 0x8100 + s, kInformational, 0, true));
           for (const Frame* f : {&esp, &auth, &rekeyed})
             steps.push_back(forwarded(*f, to_backend(*f, be(env, gw), c1), gw));
           // The client moves: each SPI from a new address whose Maglev choice is elsewhere.
           for (const Frame* f : {&esp, &auth, &rekeyed}) {
             IpAddr moved = client_not_on(env, vs, gw, n);
             Frame g = *f;
             if (vs == kVs4)
               g.ipv4(moved, vip_of(vs));
             else
               g.ipv6(moved, vip_of(vs));
             steps.push_back(forwarded(g, to_backend(g, be(env, gw), moved), gw));
           }
         }
         return steps;
       },
       // Per family: c1's first packet by Maglev (its SPI unknown yet), its next two by affinity;
       // three learned owners; three moved packets routed by them (each an affinity miss first).
       {{IKELB_EV_AFFINITY_MISS, 8},
        {IKELB_EV_AFFINITY_HIT, 4},
        {IKELB_EV_SPI_UNKNOWN, 2},
        {IKELB_EV_SPI_OWNER_LEARNED, 6},
        {IKELB_EV_SPI_LEARNED, 6}},
       [](Env& env) {
         for (uint32_t vs : {kVs4, kVs6}) {
           uint64_t s = vs == kVs4 ? 0x11 : 0x22;
           IpAddr c1 = client(vs, 600);
           uint32_t gw = env.bed.predict(vs, to_lb(c1));
           auto esp = owner(env, vs, IKELB_SPI_ESP, 0xd000 + s);
           auto ike_r = owner(env, vs, IKELB_SPI_IKE, 0x6100 + s);
           auto ike_i = owner(env, vs, IKELB_SPI_IKE, 0x7100 + s);
           ASSERT_TRUE(esp && ike_r && ike_i);
           EXPECT_EQ(esp->backend_id, gw);
           EXPECT_EQ(ike_r->backend_id, gw);
           EXPECT_EQ(ike_i->backend_id, gw);
           // The client's own SPIs were not learned.
           EXPECT_FALSE(owner(env, vs, IKELB_SPI_IKE, 0x5100 + s));
           EXPECT_FALSE(owner(env, vs, IKELB_SPI_IKE, 0x8100 + s));
         }
       }});

  all.push_back(
      {"LearnedOwnerIsNeverOverwrittenByTraffic",
       "a source pinned to another gateway sending a learned SPI goes by its affinity and "
       "changes neither the owner nor its pin; a new source with that SPI reaches the owner",
       [](Env& env) {
         set_routing(env, kVs4, IKELB_SPI_LEARN);
         env.bed.pin(kVs4, to_lb(client4(700)), 0);
         env.bed.pin(kVs4, to_lb(client4(701)), 1);
       },
       [](Env& env) {
         std::vector<Step> steps;
         IpAddr owner_client = client4(700), attacker = client4(701);
         Frame esp = from_client(owner_client, kVip4).esp(0xc0ffee, 1).payload(ike_payload(40));
         steps.push_back(forwarded(esp, to_backend(esp, be(env, 0), owner_client), 0));
         Frame forged = from_client(attacker, kVip4).esp(0xc0ffee, 9).payload(ike_payload(40));
         steps.push_back(forwarded(forged, to_backend(forged, be(env, 1), attacker), 1));
         int n = 720;
         IpAddr fresh = client_not_on(env, kVs4, 0, n);
         Frame other = from_client(fresh, kVip4).esp(0xc0ffee, 10).payload(ike_payload(40));
         steps.push_back(forwarded(other, to_backend(other, be(env, 0), fresh), 0));
         return steps;
       },
       {{IKELB_EV_AFFINITY_HIT, 2},
        {IKELB_EV_AFFINITY_MISS, 1},
        {IKELB_EV_SPI_OWNER_LEARNED, 1},
        {IKELB_EV_SPI_LEARNED, 1}},
       [](Env& env) {
         auto o = owner(env, kVs4, IKELB_SPI_ESP, 0xc0ffee);
         ASSERT_TRUE(o);
         EXPECT_EQ(o->backend_id, 0u);
         EXPECT_EQ(pinned_to(env, kVs4, client4(701)), 1u);
       }});

  all.push_back(
      {"IdleLearnedOwnerIsIgnoredAndReplaced",
       "an owner idle longer than the ESP idle time is not used (the SPI may have been reused): "
       "the packet goes by Maglev and the new gateway is learned in its place",
       [](Env& env) {
         set_routing(env, kVs4, IKELB_SPI_LEARN, 1000000000ull);
         ikelb_spi_owner_key k = owner_key(kVs4, IKELB_SPI_ESP, 0xabcdef);
         ikelb_spi_owner v{
             .backend_id = 0, .pad = 0, .last_seen_ns = monotonic_ns() - 5000000000ull};
         ASSERT_EQ(bpf_map_update_elem(env.dp.map_fd(IKELB_MAP_SPI_OWNERS), &k, &v, BPF_ANY), 0);
       },
       [](Env& env) {
         int n = 800;
         IpAddr c = client_not_on(env, kVs4, 0, n);
         uint32_t gw = env.bed.predict(kVs4, to_lb(c));
         Frame esp = from_client(c, kVip4).esp(0xabcdef, 1).payload(ike_payload(40));
         return std::vector<Step>{forwarded(esp, to_backend(esp, be(env, gw), c), gw)};
       },
       {{IKELB_EV_AFFINITY_MISS, 1}, {IKELB_EV_SPI_UNKNOWN, 1}, {IKELB_EV_SPI_OWNER_LEARNED, 1}},
       [](Env& env) {
         auto o = owner(env, kVs4, IKELB_SPI_ESP, 0xabcdef);
         ASSERT_TRUE(o);
         int n = 800;
         EXPECT_EQ(o->backend_id, env.bed.predict(kVs4, to_lb(client_not_on(env, kVs4, 0, n))));
       }});

  // --- Negative control -----------------------------------------------------------------------

  all.push_back(
      {"WithoutSpiRoutingAMovedClientChangesGateway",
       "the negative control: with SPI routing off, the labelled packets of a moved client go "
       "where Maglev sends the new address, not to the gateway holding its SA",
       nullptr,
       [](Env& env) {
         std::vector<Step> steps;
         int n = 100;
         for (uint32_t vs : {kVs4, kVs6})
           for (Carrier how : kCarriers) {
             uint32_t target = first_backend(vs) + 1;
             IpAddr c = client_not_on(env, vs, target, n);
             uint32_t gw = env.bed.predict(vs, to_lb(c));
             EXPECT_NE(gw, target);
             Frame in = labelled(c, vs, how, label_of(vs, target));
             steps.push_back(forwarded(in, to_backend(in, be(env, gw), c), gw));
           }
         return steps;
       },
       {{IKELB_EV_AFFINITY_MISS, 8}},
       nullptr});

  all.push_back(
      {"ControlPlaneLayoutRoutesWhatStrongswanAllocates",
       "the agent's writers (Datapath::set_spi_routing, set_spi_label) put exactly the entry "
       "that config/spi_layout computes for a non-default layout (6 id bits, IKE bits 50..55, "
       "ESP bits 18..23 under prefix 0x80000000) into the real maps, and SPIs drawn the way "
       "strongSwan draws them with the printed spi_mask/spi_label/spi_min/spi_max reach the "
       "gateway of that id",
       [](Env& env) {
         for (uint32_t vs : {kVs4, kVs6}) {
           env.dp.set_spi_routing(vs, spi_routing_entry(SpiRoutingConfig{kControlLayout, {}}));
           for (uint32_t k = 1; k <= 3; k++)
             env.dp.set_spi_label(vs, kControlIds[k - 1], first_backend(vs) + k - 1);
         }
       },
       [](Env& env) {
         std::vector<Step> steps;
         int n = 500;
         for (uint32_t vs : {kVs4, kVs6})
           for (Carrier how : kCarriers) {
             uint32_t target = first_backend(vs) + 2;
             IpAddr c = client_not_on(env, vs, target, n);
             Frame in = strongswan_labelled(c, vs, how, kControlIds[2]);
             steps.push_back(forwarded(in, to_backend(in, be(env, target), c), target));
           }
         return steps;
       },
       {{IKELB_EV_SPI_LABEL, 8}, {IKELB_EV_AFFINITY_MISS, 8}},
       [](Env& env) {
         // The bytes in the maps, against values written out by hand.
         ikelb_spi_routing want{};
         want.ike_mask = 0x00fc000000000000ull;
         want.esp_mask = 0x00fc0000u;
         want.ike_shift = 50;
         want.esp_shift = 18;
         want.flags = IKELB_SPI_LABELS;
         for (uint32_t vs : {kVs4, kVs6}) {
           ikelb_spi_routing got{};
           ASSERT_EQ(bpf_map_lookup_elem(env.dp.map_fd(IKELB_MAP_SPI_ROUTING), &vs, &got), 0);
           EXPECT_EQ(std::memcmp(&got, &want, sizeof(want)), 0);
           for (uint32_t k = 1; k <= 3; k++) {
             ikelb_spi_label_key key{.vs_id = vs, .id = kControlIds[k - 1]};
             uint32_t backend = IKELB_NO_BACKEND;
             ASSERT_EQ(bpf_map_lookup_elem(env.dp.map_fd(IKELB_MAP_SPI_LABELS), &key, &backend), 0);
             EXPECT_EQ(backend, first_backend(vs) + k - 1);
           }
         }
         // The snapshot the agent adopts after a restart reads them back; a deleted label is gone.
         MapSnapshot snap = env.dp.snapshot();
         EXPECT_EQ(snap.spi_routing.size(), 2u);
         EXPECT_EQ(std::memcmp(&snap.spi_routing.at(kVs6), &want, sizeof(want)), 0);
         EXPECT_EQ(snap.spi_labels.size(), 6u);
         EXPECT_EQ(snap.spi_labels.at({kVs6, kControlIds[1]}), first_backend(kVs6) + 1);
         env.dp.delete_spi_label(kVs6, kControlIds[1]);
         env.dp.delete_spi_label(kVs6, kControlIds[1]);  // already gone: fine
         EXPECT_EQ(env.dp.snapshot().spi_labels.count({kVs6, kControlIds[1]}), 0u);
         // The agent's walk of the learned owner table (ikelb_spi_owner_entries): labels only,
         // nothing learned; then three entries.
         EXPECT_EQ(env.dp.spi_owner_entries(), 0u);
         for (uint64_t spi : {1u, 2u, 3u}) {
           ikelb_spi_owner_key k = owner_key(kVs4, IKELB_SPI_ESP, spi);
           ikelb_spi_owner v{.backend_id = 1, .pad = 0, .last_seen_ns = 1};
           ASSERT_EQ(bpf_map_update_elem(env.dp.map_fd(IKELB_MAP_SPI_OWNERS), &k, &v, BPF_ANY), 0);
         }
         EXPECT_EQ(env.dp.spi_owner_entries(), 3u);
       }});

  return all;
}

class SpiTest : public ::testing::TestWithParam<Case> {};

TEST_P(SpiTest, Fixture) {
  run_case(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Cases, SpiTest, ::testing::ValuesIn(spi_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace ikelb::test
