// A backend's packet is translated when its VIP has the packet's (protocol, source port) as a
// service in any virtual server. The program reads that from the replies map (ikelb_abi.h,
// struct ikelb_reply), which the agent derives from reverse and vips: these cases change a VIP's
// services after its backends' entries exist and check that replies follow, both ways, including
// a VIP with more UDP ports than an entry lists. The negative control shows that an entry that
// does not follow a change is seen: a stale entry decides what is translated.
//
// A backend alone in its address filter slot also has a record of its entry (struct
// ikelb_reply_record), read instead of replies while the slot's IKELB_ADDR_REPLY_RECORD bit is
// set. The cases that change services without a flush check that the bit is cleared (replies
// answers); the record cases check what a flush publishes, and their own negative control shows
// that a stale record decides.
#include "fixture.h"

namespace ikelb::test {
namespace {

constexpr uint32_t kOtherVs = 7;  // another virtual server on the IPv4 VIP (only its services)

// Ports 1701, 1702, ... of the IPv4 VIP, as services of kOtherVs, added or removed.
void set_extra_ports(Env& env, int count, bool add) {
  for (int i = 0; i < count; i++) {
    ServiceKey k{to_lb(kVip4), IPPROTO_UDP, static_cast<uint16_t>(1701 + i)};
    add ? env.dp.set_service(k, kOtherVs) : env.dp.delete_service(k);
  }
}

ikelb_reverse_key reply_key(Env& env, uint32_t backend) {
  ikelb_reverse_key key{};
  key.addr = be(env, backend).addr.addr;
  key.family = be(env, backend).addr.family;
  return key;
}

ikelb_reply reply_entry(Env& env, uint32_t backend) {
  const ikelb_reverse_key key = reply_key(env, backend);
  ikelb_reply r{};
  EXPECT_EQ(bpf_map_lookup_elem(env.dp.map_fd(IKELB_MAP_REPLIES), &key, &r), 0);
  return r;
}

std::vector<uint16_t> listed_ports(const ikelb_reply& r) {
  std::vector<uint16_t> out;
  for (uint16_t p : r.udp_ports)
    if (p) out.push_back(ntohs(p));
  return out;
}

Step reply_from(Env& env, uint32_t backend, const IpAddr& c, uint16_t port, bool translated) {
  Frame r = from_backend(be(env, backend), c).udp(port, 40000).payload(ike_payload(40));
  if (translated) return replied(r, to_client(r, kVip4, c), backend);
  return untouched(r.build(), IKELB_OUT_PASS_NOT_OURS, Port::kGateway);
}

ikelb_reply_record record_of(Env& env, uint32_t backend) {
  const uint32_t slot = slot_of(be(env, backend).addr);
  ikelb_reply_record r{};
  EXPECT_EQ(bpf_map_lookup_elem(env.dp.map_fd(IKELB_MAP_REPLY_RECORDS), &slot, &r), 0);
  return r;
}

// The backend's slot reads `want` from its record: the bit is set, the record names the backend
// and holds the same entry as replies.
void expect_record(Env& env, uint32_t backend, bool published) {
  const IpAddr gw = to_test(be(env, backend).addr);
  EXPECT_EQ(kinds_of(env, gw) & IKELB_ADDR_REPLY_RECORD, published ? IKELB_ADDR_REPLY_RECORD : 0)
      << gw.to_string();
  if (!published) return;
  const ikelb_reply_record r = record_of(env, backend);
  const ikelb_reply entry = reply_entry(env, backend);
  EXPECT_EQ(r.family, be(env, backend).addr.family);
  EXPECT_EQ(std::memcmp(&r.addr, &be(env, backend).addr.addr, sizeof(r.addr)), 0);
  EXPECT_EQ(std::memcmp(&r.reply, &entry, sizeof(entry)), 0);
}

std::vector<Case> cases() {
  std::vector<Case> all;

  all.push_back(
      {"APortAnotherVirtualServerAddsToTheVipIsTranslated",
       "a second virtual server on the IPv4 VIP adds UDP 1701 after the backends' entries exist: "
       "gw1's replies from 1701 are translated, from 1702 they are not",
       [](Env& env) { set_extra_ports(env, 1, true); },
       [](Env& env) {
         IpAddr c = client4(50);
         return std::vector<Step>{reply_from(env, 0, c, 1701, true),
                                  reply_from(env, 0, c, 1702, false),
                                  reply_from(env, 1, c, 500, true)};
       },
       {},
       [](Env& env) {
         const ikelb_reply r = reply_entry(env, 0);
         EXPECT_EQ(listed_ports(r), (std::vector<uint16_t>{500, 1701, 4500}));
         EXPECT_EQ(r.more, 0);
         EXPECT_EQ(r.esp, 1);
         expect_record(env, 0, false);  // not flushed: replies answers
       }});

  all.push_back(
      {"MorePortsThanAnEntryListsAreAskedOfVips",
       "the IPv4 VIP gets 8 more UDP ports (10 in all, 6 fit in an entry): replies from each of "
       "the 10 are translated, from the 11th not",
       [](Env& env) { set_extra_ports(env, 8, true); },
       [](Env& env) {
         IpAddr c = client4(51);
         std::vector<Step> steps;
         for (uint16_t port : {500, 4500, 1701, 1702, 1703, 1704, 1705, 1706, 1707, 1708})
           steps.push_back(reply_from(env, 2, c, port, true));
         steps.push_back(reply_from(env, 2, c, 1709, false));
         return steps;
       },
       {},
       [](Env& env) {
         const ikelb_reply r = reply_entry(env, 2);
         EXPECT_EQ(listed_ports(r).size(), size_t{IKELB_REPLY_PORTS});
         EXPECT_EQ(r.more, 1);
       }});

  all.push_back(
      {"RemovedServicesAreNoLongerTranslated",
       "the 8 extra ports and the IPv4 VIP's ESP service are added and removed again: replies "
       "from 1701 and 1708 and ESP replies are left to the kernel, UDP 4500 still translated",
       [](Env& env) {
         set_extra_ports(env, 8, true);
         set_extra_ports(env, 8, false);
         env.dp.delete_service({to_lb(kVip4), IPPROTO_ESP, 0});
       },
       [](Env& env) {
         IpAddr c = client4(52);
         Frame esp = from_backend(be(env, 0), c).esp(0xdeadbeef, 9).payload(ike_payload(96));
         return std::vector<Step>{reply_from(env, 0, c, 1701, false),
                                  reply_from(env, 0, c, 1708, false),
                                  untouched(esp.build(), IKELB_OUT_PASS_NOT_OURS, Port::kGateway),
                                  reply_from(env, 0, c, 4500, true)};
       },
       {},
       [](Env& env) {
         const ikelb_reply r = reply_entry(env, 0);
         EXPECT_EQ(listed_ports(r), (std::vector<uint16_t>{500, 4500}));
         EXPECT_EQ(r.more, 0);
         EXPECT_EQ(r.esp, 0);
       }});

  all.push_back({"TheBackendsArePublishedInRecords",
                 "after the test bed's flush, every backend's slot has the reply record bit and a "
                 "record of its replies entry; gw1's and gw3's replies are translated",
                 nullptr,
                 [](Env& env) {
                   IpAddr c = client4(54);
                   return std::vector<Step>{reply_from(env, 0, c, 4500, true),
                                            reply_from(env, 2, c, 500, true)};
                 },
                 {},
                 [](Env& env) {
                   for (uint32_t b = 0; b < 6; b++) expect_record(env, b, true);
                 }});

  all.push_back(
      {"APortAddedLaterIsInTheNextRecord",
       "UDP 1701 of another virtual server on the IPv4 VIP, flushed: gw1's record "
       "lists it, replies from 1701 are translated and from 1702 not",
       [](Env& env) {
         set_extra_ports(env, 1, true);
         env.dp.flush();
       },
       [](Env& env) {
         IpAddr c = client4(55);
         return std::vector<Step>{reply_from(env, 0, c, 1701, true),
                                  reply_from(env, 0, c, 1702, false)};
       },
       {},
       [](Env& env) {
         expect_record(env, 0, true);
         EXPECT_EQ(listed_ports(record_of(env, 0).reply), (std::vector<uint16_t>{500, 1701, 4500}));
       }});

  all.push_back({"ARemovedBackendIsNotTranslatedEvenBeforeTheNextFlush",
                 "gw1's reverse entry is deleted and not flushed: its replies are left to the "
                 "kernel although its slot still holds a record",
                 [](Env& env) { env.dp.delete_reverse(be(env, 0).addr); },
                 [](Env& env) {
                   IpAddr c = client4(56);
                   return std::vector<Step>{reply_from(env, 0, c, 4500, false),
                                            reply_from(env, 1, c, 4500, true)};
                 },
                 {},
                 [](Env& env) {
                   EXPECT_EQ(kinds_of(env, to_test(be(env, 0).addr)), 0);
                   expect_record(env, 1, true);
                 }});

  all.push_back(
      {"AStaleRecordDecides",
       "negative control: gw1's record is overwritten by hand with one that lists only "
       "UDP 1701 (not a service): gw1's UDP 1701 is translated and its UDP 4500 is not, "
       "so the cases above would fail if the agent left a record stale and readable",
       [](Env& env) {
         ikelb_reply_record r = record_of(env, 0);
         std::memset(r.reply.udp_ports, 0, sizeof(r.reply.udp_ports));
         r.reply.udp_ports[0] = htons(1701);
         r.reply.more = 0;
         const uint32_t slot = slot_of(be(env, 0).addr);
         ASSERT_EQ(bpf_map_update_elem(env.dp.map_fd(IKELB_MAP_REPLY_RECORDS), &slot, &r, BPF_ANY),
                   0);
       },
       [](Env& env) {
         IpAddr c = client4(57);
         return std::vector<Step>{reply_from(env, 0, c, 1701, true),
                                  reply_from(env, 0, c, 4500, false)};
       },
       {},
       nullptr});

  all.push_back(
      {"AStaleEntryDecides",
       "negative control: gw1's slot loses its record bit and its entry is overwritten by hand "
       "with one that lists only UDP 1701 (not a service): gw1's UDP 1701 is translated and its "
       "UDP 4500 is not, so the cases above would fail if the agent left entries stale",
       [](Env& env) {
         set_kind(env, to_test(be(env, 0).addr), IKELB_ADDR_BACKEND);
         ikelb_reply r = reply_entry(env, 0);
         std::memset(r.udp_ports, 0, sizeof(r.udp_ports));
         r.udp_ports[0] = htons(1701);
         r.more = 0;
         const ikelb_reverse_key key = reply_key(env, 0);
         ASSERT_EQ(bpf_map_update_elem(env.dp.map_fd(IKELB_MAP_REPLIES), &key, &r, BPF_ANY), 0);
       },
       [](Env& env) {
         IpAddr c = client4(53);
         return std::vector<Step>{reply_from(env, 0, c, 1701, true),
                                  reply_from(env, 0, c, 4500, false)};
       },
       {},
       nullptr});
  return all;
}

class RepliesTest : public ::testing::TestWithParam<Case> {};

TEST_P(RepliesTest, Fixture) {
  run_case(GetParam());
}

INSTANTIATE_TEST_SUITE_P(Cases, RepliesTest, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace ikelb::test
