// Test-only packet toolkit for the XDP fixtures: a fluent frame builder, a frame parser, an
// independent checksum verifier (full RFC 1071 recomputation, never the incremental update the
// data path uses) and a field-aware diff for failure messages.
//
// Misusing the builder (an IPv6 address in ipv4(), a VLAN id above 4095, ...) throws
// std::invalid_argument: it is a bug in the test, and gtest reports it as a failure. Malformed
// frames are data, not errors: the parser and verifier report them as values.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ikelb::test {

using Bytes = std::vector<uint8_t>;

inline constexpr uint16_t kEthIpv4 = 0x0800;
inline constexpr uint16_t kEthArp = 0x0806;
inline constexpr uint16_t kEthIpv6 = 0x86dd;
inline constexpr uint16_t kTpid8021Q = 0x8100;
inline constexpr uint16_t kTpid8021ad = 0x88a8;

inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIpv6Frag = 44;
inline constexpr uint8_t kProtoEsp = 50;
inline constexpr uint8_t kProtoIcmpv6 = 58;

// An IPv4 or IPv6 address. A default-constructed IpAddr is "none" (neither family).
class IpAddr {
 public:
  IpAddr() = default;
  static std::optional<IpAddr> parse(std::string_view text);
  static IpAddr v4(std::span<const uint8_t, 4> bytes);
  static IpAddr v6(std::span<const uint8_t, 16> bytes);

  bool is_v4() const { return size_ == 4; }
  bool is_v6() const { return size_ == 16; }
  std::span<const uint8_t> bytes() const { return {bytes_.data(), size_}; }
  std::string to_string() const;

  friend bool operator==(const IpAddr&, const IpAddr&) = default;

 private:
  std::array<uint8_t, 16> bytes_{};
  size_t size_ = 0;
};

// Parses or throws std::invalid_argument: for literals in tests.
IpAddr ip(std::string_view text);

struct Mac {
  std::array<uint8_t, 6> bytes{};

  static std::optional<Mac> parse(std::string_view text);  // "02:00:00:00:00:01"
  std::string to_string() const;
  friend bool operator==(const Mac&, const Mac&) = default;
};

Mac mac(std::string_view text);  // parses or throws std::invalid_argument
inline constexpr Mac kBroadcastMac{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

std::ostream& operator<<(std::ostream& os, const IpAddr& a);
std::ostream& operator<<(std::ostream& os, const Mac& m);

struct VlanTag {
  uint16_t tpid = kTpid8021Q;
  uint16_t tci = 0;  // PCP, DEI and VID as on the wire

  uint16_t vid() const { return tci & 0x0fff; }
  friend bool operator==(const VlanTag&, const VlanTag&) = default;
};

// Describes one Ethernet frame; build() serialises it. Lengths and checksums are computed at
// build() time, so setters may be called in any order. Unset MACs are all-zero; TTL/hop limit
// defaults to 64.
class Frame {
 public:
  Frame& eth(const Mac& src, const Mac& dst);
  // The first call adds the outer tag (use kTpid8021ad there for QinQ).
  Frame& vlan(uint16_t vid, uint16_t tpid = kTpid8021Q, uint8_t pcp = 0);

  Frame& ipv4(const IpAddr& src, const IpAddr& dst);
  Frame& ipv6(const IpAddr& src, const IpAddr& dst);
  Frame& ttl(uint8_t ttl);  // IPv4 TTL or IPv6 hop limit
  Frame& hop_limit(uint8_t hops) { return ttl(hops); }
  Frame& tos(uint8_t tos);  // IPv4 TOS or IPv6 traffic class
  Frame& flow_label(uint32_t label);
  // IPv4 identification (must fit 16 bits) or the IPv6 Fragment header identification.
  Frame& ip_id(uint32_t id);
  Frame& dont_fragment(bool df = true);
  Frame& options(Bytes ipv4_options);  // multiple of 4 bytes, at most 40
  // offset_bytes is a multiple of 8. For IPv6 this adds a Fragment header (offset 0 and
  // more_fragments false makes an atomic fragment).
  Frame& frag(uint16_t offset_bytes, bool more_fragments);

  Frame& udp(uint16_t sport, uint16_t dport);
  // IP protocol 50, or ESP-in-UDP (RFC 3948) when udp() is also set.
  Frame& esp(uint32_t spi, uint32_t seq);
  Frame& payload(Bytes bytes);  // after the UDP/ESP header
  // Raw L4 bytes under the given protocol number (a TCP header, a fragment's tail, ...);
  // replaces udp()/esp()/payload().
  Frame& l4(uint8_t protocol, Bytes bytes);

  // An ICMP (with ipv4()) or ICMPv6 (with ipv6()) message: type, code, the 4 bytes after the
  // checksum (e.g. the MTU of "fragmentation needed" / "packet too big") and the body (for errors
  // the quoted packet, see ip_packet()). The checksum is computed; replaces udp()/esp()/payload().
  Frame& icmp(uint8_t type, uint8_t code, uint32_t rest, Bytes body);
  Frame& icmp_checksum(uint16_t checksum);  // written as given instead of computed

  // Non-IP frames for "not for us" cases. The ARP sender hardware address is the eth() source.
  Frame& arp_request(const IpAddr& sender, const IpAddr& target);
  // ICMPv6 type 135 with a source link-layer address option (the eth() source); the ICMPv6
  // checksum is computed. Needs ipv6(); see neighbour_solicitation() below for the addressing.
  Frame& neighbour_solicitation(const IpAddr& target);

  Frame& pad_to_min(bool pad = true);  // zero-pad to 60 bytes; IP lengths stay real

  // Overrides for malformed frames: the value is written as given instead of computed.
  Frame& ihl(uint8_t ihl);                // IPv4 header length nibble, in 32-bit words
  Frame& ip_length(uint16_t length);      // IPv4 total length or IPv6 payload length
  Frame& ip_checksum(uint16_t checksum);  // IPv4 header checksum
  Frame& udp_length(uint16_t length);
  Frame& udp_checksum(uint16_t checksum);  // 0 means "no checksum" (valid only for IPv4)
  Frame& truncate(size_t frame_bytes);     // cut the finished frame (after checksums)

  Bytes build() const;
  // Builds the whole datagram (UDP checksum over all of it) and splits its IP payload into
  // fragments of fragment_bytes (a multiple of 8; the last may be shorter). The first fragment
  // carries the UDP header. IPv4 options without the copy flag stay in the first fragment.
  std::vector<Bytes> build_fragments(size_t fragment_bytes) const;

 private:
  Bytes build_l4(uint8_t& protocol) const;

  Mac src_mac_, dst_mac_;
  std::vector<VlanTag> vlans_;
  enum class L3 { kNone, kIpv4, kIpv6, kArp } l3_ = L3::kNone;
  IpAddr src_, dst_;
  uint8_t ttl_ = 64;
  uint8_t tos_ = 0;
  uint32_t flow_label_ = 0;
  uint32_t ip_id_ = 0;
  bool df_ = false;
  Bytes options_;
  std::optional<std::pair<uint16_t, bool>> frag_;  // offset in bytes, more fragments
  std::optional<std::pair<uint16_t, uint16_t>> udp_ports_;
  std::optional<std::pair<uint32_t, uint32_t>> esp_;  // spi, seq
  Bytes payload_;
  std::optional<std::pair<uint8_t, Bytes>> raw_l4_;
  struct Icmp {
    uint8_t type, code;
    uint32_t rest;
    Bytes body;
  };
  std::optional<Icmp> icmp_;
  std::optional<uint16_t> icmp_checksum_;
  IpAddr ns_target_;
  bool pad_ = false;
  std::optional<uint8_t> ihl_;
  std::optional<uint16_t> ip_length_, ip_checksum_, udp_length_, udp_checksum_;
  std::optional<size_t> truncate_;
};

// The IP packet of a built frame (Ethernet header and tags, and padding, removed), cut to at most
// `max` bytes: what an ICMP error quotes.
Bytes ip_packet(std::span<const uint8_t> frame, size_t max = SIZE_MAX);

// Ready-made "not for us" frames; add .vlan(...) before build() if needed.
Frame arp_request(const Mac& src, const IpAddr& sender, const IpAddr& target);
// From src to the solicited-node multicast group of target, hop limit 255.
Frame neighbour_solicitation(const Mac& src, const IpAddr& src_ip, const IpAddr& target);

// A value or an error message, for results computed from untrusted frames.
template <class T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  static Result failure(std::string error) {
    Result r;
    r.error_ = std::move(error);
    return r;
  }

  explicit operator bool() const { return value_.has_value(); }
  // Throws std::bad_optional_access on an error, which gtest reports as a failure.
  const T& operator*() const { return value_.value(); }
  const T* operator->() const { return &value_.value(); }
  const std::string& error() const { return error_; }

 private:
  Result() = default;
  std::optional<T> value_;
  std::string error_;
};

struct UdpHeader {
  uint16_t sport = 0, dport = 0, length = 0, checksum = 0;
};

struct EspHeader {
  uint32_t spi = 0, seq = 0;
  bool in_udp = false;  // RFC 3948 encapsulation (port 4500, non-zero first word)
};

struct ParsedFrame {
  Mac src_mac, dst_mac;
  std::vector<VlanTag> vlans;  // outer first
  uint16_t ethertype = 0;      // after the tags
  int ip_version = 0;          // 0: not IP; the fields below stay default

  IpAddr src, dst;
  uint8_t ttl = 0;  // or hop limit
  uint8_t tos = 0;  // or traffic class
  uint32_t flow_label = 0;
  uint8_t protocol = 0;  // IPv6: after the extension headers
  uint8_t ihl = 0;
  uint16_t ip_length = 0;    // IPv4 total length or IPv6 payload length, as on the wire
  uint16_t ip_checksum = 0;  // IPv4 only
  uint32_t ip_id = 0;        // IPv4 id or IPv6 Fragment header id
  bool dont_fragment = false;
  bool has_fragment_header = false;  // IPv6
  bool more_fragments = false;
  uint16_t frag_offset = 0;  // in bytes
  bool is_fragment() const { return more_fragments || frag_offset != 0; }

  size_t l3_offset = 0;
  size_t l4_offset = 0;  // start of the L4 header, or of the data of a non-first fragment
  size_t ip_end = 0;     // end of the IP packet; Ethernet padding follows
  std::optional<UdpHeader> udp;
  std::optional<EspHeader> esp;
  size_t payload_offset = 0;  // after the innermost header parsed
  Bytes payload;              // a copy, so a ParsedFrame may outlive the frame
};

// Rejects truncated frames and lying length fields. A UDP length shorter than the IP payload
// is accepted (Linux trims the datagram); the payload then ends at the UDP length.
Result<ParsedFrame> parse_frame(std::span<const uint8_t> frame);

enum class Verdict {
  kOk,
  kNone,  // IPv4 UDP checksum 0: "not computed", valid
  kBad,
  kNotApplicable,
};

struct ChecksumCheck {
  Verdict verdict = Verdict::kNotApplicable;
  uint16_t expected = 0;  // recomputed from scratch
  uint16_t actual = 0;    // found in the frame
  std::string note;       // why a check is bad or not applicable
};

struct ChecksumReport {
  std::string error;  // the frame(s) could not be parsed or reassembled
  ChecksumCheck ipv4_header;
  ChecksumCheck udp;
  ChecksumCheck icmp;                // ICMP, or ICMPv6 with its pseudo-header
  ChecksumCheck quoted_ipv4_header;  // the IPv4 header an ICMP error quotes

  bool ok() const;  // no error and nothing bad
  std::string to_string() const;
};

std::ostream& operator<<(std::ostream& os, const ChecksumReport& r);

// Checks the IPv4 header checksum and, for a whole (unfragmented) UDP datagram, the UDP
// checksum; for ICMP and ICMPv6 the ICMP checksum and the quoted IPv4 header's checksum. A checksum
// counts as right when the receiver's check passes, so 0xffff in place of 0x0000 (one's complement
// -0) is accepted.
ChecksumReport verify_checksums(std::span<const uint8_t> frame);

// Reassembles IPv4 or IPv6 fragments, in any order, into the unfragmented frame: Ethernet and
// IP header of the first fragment, fragment fields cleared (IPv6: Fragment header removed),
// lengths and IPv4 header checksum recomputed. Holes, overlaps and mismatched ids fail.
Result<Bytes> reassemble(std::span<const Bytes> fragments);
// Every fragment's IPv4 header checksum, then the UDP checksum over the reassembled datagram.
ChecksumReport verify_fragmented_udp(std::span<const Bytes> fragments);

// "" when equal; otherwise the first differing fields of `expected`, named by layer, e.g.
// "offset 30 (ipv4.dst): expected 0a 00 00 0b got cb 00 71 0a", followed by hex dumps.
// Handy as EXPECT_EQ(describe_diff(want, got), "").
std::string describe_diff(std::span<const uint8_t> expected, std::span<const uint8_t> actual);

std::string hex(std::span<const uint8_t> bytes);       // "0a 00 00 0b"
std::string hex_dump(std::span<const uint8_t> bytes);  // 16 bytes per line with offsets
// Hex digits, whitespace ignored ("4500 0073 ..."); throws std::invalid_argument otherwise.
Bytes from_hex(std::string_view text);

}  // namespace ikelb::test
