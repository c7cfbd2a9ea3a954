#include "packet.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ikelb::test {
namespace {

const Mac kSrcMac = mac("02:00:00:00:00:01");
const Mac kDstMac = mac("02:00:00:00:00:02");
constexpr size_t kEth = 14;

// The well-known example IPv4 header (checksum 0xb861) in an Ethernet frame, with an 87-byte
// UDP payload to fill its total length of 0x73 and no UDP checksum.
Bytes known_frame() {
  Bytes f = from_hex(
      "020000000002 020000000001 0800"
      "4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7"
      "0035 0035 005f 0000");
  for (int i = 0; i < 87; ++i) f.push_back(static_cast<uint8_t>(i));
  return f;
}

// Textbook RFC 1071 over pseudo-header + UDP segment, written here so as not to trust
// packet.cc. The frame has no VLAN tags, IPv4 options or IPv6 extension headers.
uint16_t reference_udp_checksum(const Bytes& f, bool v6) {
  const size_t l3 = kEth, l4 = l3 + (v6 ? 40 : 20);
  const size_t len = static_cast<size_t>(f[l4 + 4] << 8 | f[l4 + 5]);
  Bytes data(f.begin() + (v6 ? l3 + 8 : l3 + 12), f.begin() + (v6 ? l3 + 40 : l3 + 20));
  if (v6)
    data.insert(data.end(), {0, 0, static_cast<uint8_t>(len >> 8), uint8_t(len), 0, 0, 0});
  else
    data.insert(data.end(), {0, kProtoUdp, static_cast<uint8_t>(len >> 8), uint8_t(len)});
  if (v6) data.push_back(kProtoUdp);
  data.insert(data.end(), f.begin() + l4, f.begin() + l4 + len);
  data[data.size() - len + 6] = data[data.size() - len + 7] = 0;  // the checksum field
  if (data.size() % 2) data.push_back(0);
  uint32_t sum = 0;
  for (size_t i = 0; i < data.size(); i += 2)
    sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  uint16_t c = static_cast<uint16_t>(~sum);
  return c == 0 ? 0xffff : c;
}

uint16_t udp_checksum_in(const Bytes& f, bool v6) {
  const size_t at = kEth + (v6 ? 40 : 20) + 6;
  return static_cast<uint16_t>(f[at] << 8 | f[at + 1]);
}

Frame udp4(Bytes payload) {
  return Frame()
      .eth(kSrcMac, kDstMac)
      .ipv4(ip("10.0.0.1"), ip("10.0.0.11"))
      .udp(1234, 53)
      .payload(std::move(payload));
}

Frame udp6(Bytes payload) {
  return Frame()
      .eth(kSrcMac, kDstMac)
      .ipv6(ip("2001:db8::1"), ip("2001:db8::b"))
      .udp(1234, 53)
      .payload(std::move(payload));
}

Bytes odd_payload() {
  return from_hex("deadbeef 0102030405 ff");
}  // 10 bytes: odd sums below

TEST(Checksum, KnownIpv4Header) {
  Bytes f = known_frame();
  ChecksumReport r = verify_checksums(f);
  ASSERT_TRUE(r.error.empty()) << r;
  EXPECT_EQ(r.ipv4_header.verdict, Verdict::kOk) << r;
  EXPECT_EQ(r.ipv4_header.actual, 0xb861);
  EXPECT_EQ(r.udp.verdict, Verdict::kNone) << r;  // checksum 0 is valid for IPv4
  EXPECT_TRUE(r.ok());

  f[kEth + 11] ^= 0x01;  // checksum 0xb861 -> 0xb860
  r = verify_checksums(f);
  EXPECT_EQ(r.ipv4_header.verdict, Verdict::kBad) << r;
  EXPECT_EQ(r.ipv4_header.expected, 0xb861);
  EXPECT_EQ(r.ipv4_header.actual, 0xb860);
  EXPECT_FALSE(r.ok());

  f = known_frame();
  f[kEth + 8] = 0x3f;  // TTL changed, checksum left alone
  EXPECT_EQ(verify_checksums(f).ipv4_header.verdict, Verdict::kBad);
}

TEST(Checksum, BuilderIpv4HeaderMatchesKnownFrame) {
  // The same header through the builder: only the checksum is left to packet.cc.
  const Bytes known = known_frame();
  Bytes payload(known.begin() + kEth + 28, known.end());
  Bytes f = Frame()
                .eth(kSrcMac, kDstMac)
                .ipv4(ip("192.168.0.1"), ip("192.168.0.199"))
                .dont_fragment()
                .udp(53, 53)
                .udp_checksum(0)
                .payload(payload)
                .build();
  EXPECT_EQ(describe_diff(known, f), "");
}

TEST(Checksum, UdpMatchesIndependentComputation) {
  for (bool v6 : {false, true}) {
    SCOPED_TRACE(v6 ? "ipv6" : "ipv4");
    Bytes f = (v6 ? udp6(odd_payload()) : udp4(odd_payload())).build();
    EXPECT_EQ(udp_checksum_in(f, v6), reference_udp_checksum(f, v6));
    ChecksumReport r = verify_checksums(f);
    EXPECT_EQ(r.udp.verdict, Verdict::kOk) << r;
    EXPECT_TRUE(r.ok()) << r;

    f.back() ^= 0x40;  // corrupt the payload
    r = verify_checksums(f);
    EXPECT_EQ(r.udp.verdict, Verdict::kBad) << r;
    EXPECT_EQ(r.udp.expected, reference_udp_checksum(f, v6));
    EXPECT_FALSE(r.ok());
  }
}

TEST(Checksum, ComputedZeroIsSentAsFfff) {
  // Append the checksum of the datagram as a final word: the one's complement sum becomes
  // 0xffff, so the computed checksum is 0, which UDP must transmit as 0xffff.
  Bytes payload = odd_payload();
  payload.resize(12, 0);
  const uint16_t c = udp_checksum_in(udp4(payload).build(), false);
  payload[10] = static_cast<uint8_t>(c >> 8);
  payload[11] = static_cast<uint8_t>(c);
  Bytes f = udp4(payload).build();
  EXPECT_EQ(udp_checksum_in(f, false), 0xffff);
  EXPECT_EQ(verify_checksums(f).udp.verdict, Verdict::kOk);
}

TEST(Checksum, ZeroUdpChecksum) {
  ChecksumReport r4 = verify_checksums(udp4(odd_payload()).udp_checksum(0).build());
  EXPECT_EQ(r4.udp.verdict, Verdict::kNone) << r4;
  EXPECT_TRUE(r4.ok());
  ChecksumReport r6 = verify_checksums(udp6(odd_payload()).udp_checksum(0).build());
  EXPECT_EQ(r6.udp.verdict, Verdict::kBad) << r6;
  EXPECT_FALSE(r6.ok());
}

TEST(Builder, VlanTags) {
  Bytes f = udp4({1}).vlan(100, kTpid8021ad).vlan(4095, kTpid8021Q, 5).build();
  auto p = parse_frame(f);
  ASSERT_TRUE(p) << p.error();
  ASSERT_EQ(p->vlans.size(), 2u);
  EXPECT_EQ(p->vlans[0], (VlanTag{kTpid8021ad, 100}));
  EXPECT_EQ(p->vlans[1].tpid, kTpid8021Q);
  EXPECT_EQ(p->vlans[1].vid(), 4095);
  EXPECT_EQ(p->vlans[1].tci >> 13, 5);
  EXPECT_EQ(p->ethertype, kEthIpv4);
  EXPECT_EQ(p->l3_offset, kEth + 8);
  EXPECT_EQ(p->src_mac, kSrcMac);
  EXPECT_EQ(p->dst_mac, kDstMac);
  EXPECT_TRUE(verify_checksums(f).ok());
  EXPECT_THROW(Frame().vlan(4096), std::invalid_argument);
}

TEST(Builder, Ipv4FieldsAndOptions) {
  Bytes f = udp4({1, 2, 3})
                .ttl(7)
                .tos(0x2e)
                .ip_id(0xbeef)
                .dont_fragment()
                .options({0x94, 0x04, 0x00, 0x00})
                .build();  // router alert
  EXPECT_EQ(f[kEth], 0x46);
  EXPECT_EQ(f[kEth + 8], 7);
  auto p = parse_frame(f);
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->ip_version, 4);
  EXPECT_EQ(p->ihl, 6);
  EXPECT_EQ(p->l4_offset, kEth + 24);
  EXPECT_EQ(p->ttl, 7);
  EXPECT_EQ(p->tos, 0x2e);
  EXPECT_EQ(p->ip_id, 0xbeefu);
  EXPECT_TRUE(p->dont_fragment);
  EXPECT_FALSE(p->is_fragment());
  EXPECT_EQ(p->ip_length, 24 + 8 + 3);
  EXPECT_EQ(p->src, ip("10.0.0.1"));
  EXPECT_EQ(p->dst, ip("10.0.0.11"));
  ASSERT_TRUE(p->udp);
  EXPECT_EQ(p->udp->sport, 1234);
  EXPECT_EQ(p->udp->dport, 53);
  EXPECT_EQ(p->payload, (Bytes{1, 2, 3}));
  EXPECT_TRUE(verify_checksums(f).ok()) << verify_checksums(f);
}

TEST(Builder, Ipv6Fields) {
  Bytes f = udp6({9}).hop_limit(3).tos(0xb8).flow_label(0xabcde).build();
  auto p = parse_frame(f);
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->ip_version, 6);
  EXPECT_EQ(p->ttl, 3);
  EXPECT_EQ(p->tos, 0xb8);
  EXPECT_EQ(p->flow_label, 0xabcdeu);
  EXPECT_EQ(p->protocol, kProtoUdp);
  EXPECT_EQ(p->ip_length, 8 + 1);
  EXPECT_EQ(p->dst, ip("2001:db8::b"));
}

TEST(Builder, EspAndEspInUdp) {
  Bytes esp = Frame().ipv4(ip("10.0.0.1"), ip("10.0.0.2")).esp(0x11223344, 7).payload({5}).build();
  auto p = parse_frame(esp);
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->protocol, kProtoEsp);
  ASSERT_TRUE(p->esp);
  EXPECT_EQ(p->esp->spi, 0x11223344u);
  EXPECT_EQ(p->esp->seq, 7u);
  EXPECT_FALSE(p->esp->in_udp);
  EXPECT_EQ(p->payload, Bytes{5});

  Bytes natt = Frame()
                   .ipv4(ip("10.0.0.1"), ip("10.0.0.2"))
                   .udp(4500, 4500)
                   .esp(0xcafe, 9)
                   .payload({6})
                   .build();
  p = parse_frame(natt);
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->protocol, kProtoUdp);
  ASSERT_TRUE(p->udp && p->esp);
  EXPECT_EQ(p->udp->length, 8 + 8 + 1);
  EXPECT_EQ(p->esp->spi, 0xcafeu);
  EXPECT_EQ(p->esp->seq, 9u);
  EXPECT_TRUE(p->esp->in_udp);
  EXPECT_EQ(p->payload, Bytes{6});
  EXPECT_EQ(verify_checksums(natt).udp.verdict, Verdict::kOk);
}

TEST(Fragments, ReassembleToBuild) {
  Bytes payload(100);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 7);
  const Frame frames[] = {udp4(payload).ip_id(0x4242).options({0x94, 0x04, 0x00, 0x00}),
                          udp6(payload).ip_id(0x12345678)};
  for (const Frame& frame : frames) {
    const Bytes whole = frame.build();
    std::vector<Bytes> frags = frame.build_fragments(32);  // 108 bytes: 32+32+32+12
    ASSERT_EQ(frags.size(), 4u);
    for (size_t i = 0; i < frags.size(); ++i) {
      auto p = parse_frame(frags[i]);
      ASSERT_TRUE(p) << p.error();
      EXPECT_EQ(p->frag_offset, 32 * i);
      EXPECT_EQ(p->more_fragments, i + 1 < frags.size());
      if (p->ip_version == 4) {
        EXPECT_EQ(p->ihl, 6);  // router alert has the copy flag
      }
      EXPECT_EQ(p->ip_version == 4 ? 0x4242u : 0x12345678u, p->ip_id);
      EXPECT_EQ(verify_checksums(frags[i]).udp.verdict, Verdict::kNotApplicable);  // not whole
    }
    std::vector<Bytes> shuffled(frags.rbegin(), frags.rend());
    auto re = reassemble(shuffled);
    ASSERT_TRUE(re) << re.error();
    EXPECT_EQ(describe_diff(whole, *re), "");
    ChecksumReport r = verify_fragmented_udp(frags);
    EXPECT_TRUE(r.ok()) << r;
    EXPECT_EQ(r.udp.verdict, Verdict::kOk) << r;

    frags[3].back() ^= 1;
    EXPECT_EQ(verify_fragmented_udp(frags).udp.verdict, Verdict::kBad);

    frags.erase(frags.begin() + 1);
    auto holed = reassemble(frags);
    EXPECT_FALSE(holed);
    EXPECT_FALSE(holed.error().empty());
    EXPECT_FALSE(verify_fragmented_udp(frags).ok());
  }
}

TEST(Parse, RejectsMalformed) {
  const Frame good = udp4(odd_payload());
  const size_t size = good.build().size();
  const Frame bad[] = {Frame(good).truncate(12),
                       Frame(good).truncate(kEth + 10),
                       Frame(good).truncate(size - 1),
                       Frame(good).ip_length(200),
                       Frame(good).ihl(4),
                       Frame(good).udp_length(100),
                       Frame(good).udp_length(4),
                       udp6(odd_payload()).truncate(kEth + 45)};
  for (const Frame& f : bad) {
    Bytes b = f.build();
    auto p = parse_frame(b);
    EXPECT_FALSE(p) << hex_dump(b);
    EXPECT_FALSE(p.error().empty());
    EXPECT_FALSE(verify_checksums(b).ok());
  }
  // A short UDP length is accepted (Linux trims) and ends the payload.
  auto p = parse_frame(Frame(good).udp_length(8 + 4).build());
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->payload, from_hex("deadbeef"));
  // Ethernet padding is not payload.
  p = parse_frame(Frame(good).pad_to_min().build());
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->payload, odd_payload());
}

TEST(Diff, NamesTheField) {
  const Bytes a = udp4({1, 2}).build();
  EXPECT_EQ(describe_diff(a, a), "");
  const Bytes b = Frame()
                      .eth(kSrcMac, kDstMac)
                      .ipv4(ip("10.0.0.1"), ip("203.0.113.10"))
                      .udp(1234, 53)
                      .payload({1, 2})
                      .build();
  std::string d = describe_diff(a, b);
  EXPECT_NE(d.find("ipv4.dst"), std::string::npos) << d;
  EXPECT_NE(d.find("0a 00 00 0b"), std::string::npos) << d;
  EXPECT_NE(describe_diff(a, Bytes(a.begin(), a.end() - 1)), "");
}

}  // namespace
}  // namespace ikelb::test

namespace ikelb::test {
namespace {

// The ICMP builder and verifier the edge fixtures rely on: a good checksum passes, a flipped
// byte in the message (ICMP) or in the quote's header (its own checksum) is caught.
TEST(Checksum, IcmpErrorsAndTheirQuotes) {
  Bytes quoted = Frame()
                     .eth(mac("02:00:00:00:00:01"), mac("02:00:00:00:00:02"))
                     .ipv4(ip("203.0.113.10"), ip("100.64.0.1"))
                     .udp(4500, 4500)
                     .payload(Bytes(100, 0x5a))
                     .build();
  Frame error = Frame()
                    .eth(mac("02:00:00:00:00:03"), mac("02:00:00:00:00:04"))
                    .ipv4(ip("192.0.2.1"), ip("203.0.113.10"))
                    .icmp(3, 4, 1300, ip_packet(quoted, 48));
  Bytes good = error.build();
  ChecksumReport r = verify_checksums(good);
  EXPECT_TRUE(r.ok()) << r;
  EXPECT_EQ(r.icmp.verdict, Verdict::kOk);
  EXPECT_EQ(r.quoted_ipv4_header.verdict, Verdict::kOk);
  Bytes flipped = good;
  flipped.back() ^= 1;
  EXPECT_EQ(verify_checksums(flipped).icmp.verdict, Verdict::kBad);
  Bytes requoted = ip_packet(quoted, 48);
  requoted[12] ^= 1;  // the quoted source address, checksum left as it was
  Bytes bad_quote = Frame(error).icmp(3, 4, 1300, requoted).build();
  EXPECT_EQ(verify_checksums(bad_quote).quoted_ipv4_header.verdict, Verdict::kBad);

  Bytes quoted6 = Frame()
                      .eth(mac("02:00:00:00:00:01"), mac("02:00:00:00:00:02"))
                      .ipv6(ip("2001:db8:f::10"), ip("2001:db8:100::1"))
                      .udp(4500, 4500)
                      .payload(Bytes(100, 0x5a))
                      .build();
  Bytes ptb = Frame()
                  .eth(mac("02:00:00:00:00:03"), mac("02:00:00:00:00:04"))
                  .ipv6(ip("2001:db8:200::1"), ip("2001:db8:f::10"))
                  .icmp(2, 0, 1280, ip_packet(quoted6))
                  .build();
  EXPECT_TRUE(verify_checksums(ptb).ok()) << verify_checksums(ptb);
  Bytes moved = ptb;
  moved[14 + 24 + 15] ^= 1;  // the outer destination: ICMPv6 covers it in its pseudo-header
  EXPECT_EQ(verify_checksums(moved).icmp.verdict, Verdict::kBad);
}

}  // namespace
}  // namespace ikelb::test
