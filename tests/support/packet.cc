#include "packet.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace ikelb::test {
namespace {

// ---- byte access (network order) ----

void put16(Bytes& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}

void put32(Bytes& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v >> 16));
  put16(out, static_cast<uint16_t>(v));
}

void append(Bytes& out, std::span<const uint8_t> bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

void write16(Bytes& out, size_t at, uint16_t v) {
  out[at] = static_cast<uint8_t>(v >> 8);
  out[at + 1] = static_cast<uint8_t>(v);
}

uint16_t rd16(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint16_t>(b[at] << 8 | b[at + 1]);
}

uint32_t rd32(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint32_t>(rd16(b, at)) << 16 | rd16(b, at + 2);
}

std::string hex16(uint16_t v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%04x", v);
  return buf;
}

// ---- RFC 1071, deliberately the plain textbook form: the data path updates checksums
// incrementally, and these tests are only worth something if they do not share its method. ----

// Sum of big-endian 16-bit words; an odd last byte is padded with zero. Callers only sum
// several spans in a row when all but the last have even length.
uint64_t sum_words(std::span<const uint8_t> b, uint64_t acc = 0) {
  size_t i = 0;
  for (; i + 1 < b.size(); i += 2) acc += static_cast<uint64_t>(b[i]) << 8 | b[i + 1];
  if (i < b.size()) acc += static_cast<uint64_t>(b[i]) << 8;
  return acc;
}

uint16_t fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}

uint16_t checksum_of(std::span<const uint8_t> b, uint64_t acc = 0) {
  return static_cast<uint16_t>(~fold(sum_words(b, acc)));
}

Bytes pseudo_header(const IpAddr& src, const IpAddr& dst, uint8_t protocol, uint32_t length) {
  Bytes p;
  append(p, src.bytes());
  append(p, dst.bytes());
  if (src.is_v4()) {
    p.push_back(0);
    p.push_back(protocol);
    put16(p, static_cast<uint16_t>(length));
  } else {
    put32(p, length);
    put32(p, protocol);  // three zero bytes, then the next header
  }
  return p;
}

// UDP (RFC 768) sends a computed 0 as 0xffff, because 0 on the wire means "no checksum".
uint16_t udp_checksum_of(const IpAddr& src, const IpAddr& dst, std::span<const uint8_t> segment) {
  Bytes pseudo = pseudo_header(src, dst, kProtoUdp, static_cast<uint32_t>(segment.size()));
  uint16_t c = checksum_of(segment, sum_words(pseudo));
  return c == 0 ? 0xffff : c;
}

[[noreturn]] void misuse(const std::string& what) {
  throw std::invalid_argument(what);
}

// ---- frame walk shared by the parser, the verifier, reassembly and the diff ----

struct Field {
  size_t offset;
  size_t length;
  std::string name;
};

struct Walk {
  ParsedFrame p;
  std::vector<Field> fields;          // in frame order, filled as far as the frame could be read
  size_t frag_data_offset = 0;        // where the fragmentable part starts
  size_t frag_header_offset = 0;      // IPv6 Fragment header
  size_t frag_next_header_field = 0;  // IPv6: the byte that names the Fragment header
  uint8_t frag_next_header = 0;       // IPv6: what the Fragment header says follows it
};

constexpr size_t kMaxVlanTags = 8;

std::string walk_l4(std::span<const uint8_t> f, Walk& w);

// Returns "" or why the frame is malformed; w.fields covers what was read before that.
std::string walk(std::span<const uint8_t> f, Walk& w) {
  ParsedFrame& p = w.p;
  auto field = [&](size_t offset, size_t length, std::string name) {
    w.fields.push_back({offset, length, std::move(name)});
  };
  auto rest = [&](size_t from, size_t to, std::string name) {
    p.payload_offset = from;
    p.payload.assign(f.begin() + static_cast<std::ptrdiff_t>(from),
                     f.begin() + static_cast<std::ptrdiff_t>(to));
    if (to > from) field(from, to - from, std::move(name));
    if (f.size() > to) field(to, f.size() - to, "eth.padding");
  };

  if (f.size() < 14) return "ethernet: frame is " + std::to_string(f.size()) + " bytes";
  std::copy_n(f.begin(), 6, p.dst_mac.bytes.begin());
  std::copy_n(f.begin() + 6, 6, p.src_mac.bytes.begin());
  field(0, 6, "eth.dst");
  field(6, 6, "eth.src");
  size_t off = 12;
  for (;;) {
    uint16_t type = rd16(f, off);
    if (type != kTpid8021Q && type != kTpid8021ad) break;
    if (p.vlans.size() == kMaxVlanTags) return "vlan: more than 8 tags";
    if (off + 6 > f.size()) return "vlan: tag truncated";
    std::string n = "vlan[" + std::to_string(p.vlans.size()) + "]";
    field(off, 2, n + ".tpid");
    field(off + 2, 2, n + ".tci");
    p.vlans.push_back({type, rd16(f, off + 2)});
    off += 4;
  }
  p.ethertype = rd16(f, off);
  field(off, 2, "eth.type");
  const size_t l3 = off + 2;
  p.l3_offset = l3;

  if (p.ethertype == kEthIpv4) {
    if (l3 + 20 > f.size()) return "ipv4: header truncated";
    if (f[l3] >> 4 != 4) return "ipv4: version " + std::to_string(f[l3] >> 4);
    p.ip_version = 4;
    p.ihl = f[l3] & 0x0f;
    const size_t hl = p.ihl * 4u;
    if (p.ihl < 5) return "ipv4: ihl " + std::to_string(p.ihl) + " is below 5";
    if (l3 + hl > f.size()) return "ipv4: ihl " + std::to_string(p.ihl) + " runs past the frame";
    p.tos = f[l3 + 1];
    p.ip_length = rd16(f, l3 + 2);
    p.ip_id = rd16(f, l3 + 4);
    uint16_t flags = rd16(f, l3 + 6);
    p.dont_fragment = flags & 0x4000;
    p.more_fragments = flags & 0x2000;
    p.frag_offset = static_cast<uint16_t>((flags & 0x1fff) * 8);
    p.ttl = f[l3 + 8];
    p.protocol = f[l3 + 9];
    p.ip_checksum = rd16(f, l3 + 10);
    p.src = IpAddr::v4(f.subspan(l3 + 12).first<4>());
    p.dst = IpAddr::v4(f.subspan(l3 + 16).first<4>());
    field(l3, 1, "ipv4.version_ihl");
    field(l3 + 1, 1, "ipv4.tos");
    field(l3 + 2, 2, "ipv4.total_length");
    field(l3 + 4, 2, "ipv4.id");
    field(l3 + 6, 2, "ipv4.flags_frag");
    field(l3 + 8, 1, "ipv4.ttl");
    field(l3 + 9, 1, "ipv4.protocol");
    field(l3 + 10, 2, "ipv4.checksum");
    field(l3 + 12, 4, "ipv4.src");
    field(l3 + 16, 4, "ipv4.dst");
    if (hl > 20) field(l3 + 20, hl - 20, "ipv4.options");
    if (p.ip_length < hl) return "ipv4: total length " + std::to_string(p.ip_length) + " < ihl";
    if (l3 + p.ip_length > f.size())
      return "ipv4: total length " + std::to_string(p.ip_length) + " exceeds the " +
             std::to_string(f.size() - l3) + " bytes present";
    p.ip_end = l3 + p.ip_length;
    p.l4_offset = l3 + hl;
    w.frag_data_offset = p.l4_offset;
  } else if (p.ethertype == kEthIpv6) {
    if (l3 + 40 > f.size()) return "ipv6: header truncated";
    if (f[l3] >> 4 != 6) return "ipv6: version " + std::to_string(f[l3] >> 4);
    p.ip_version = 6;
    uint32_t word0 = rd32(f, l3);
    p.tos = static_cast<uint8_t>(word0 >> 20);
    p.flow_label = word0 & 0xfffff;
    p.ip_length = rd16(f, l3 + 4);
    p.ttl = f[l3 + 7];
    p.src = IpAddr::v6(f.subspan(l3 + 8).first<16>());
    p.dst = IpAddr::v6(f.subspan(l3 + 24).first<16>());
    field(l3, 4, "ipv6.version_class_flow");
    field(l3 + 4, 2, "ipv6.payload_length");
    field(l3 + 6, 1, "ipv6.next_header");
    field(l3 + 7, 1, "ipv6.hop_limit");
    field(l3 + 8, 16, "ipv6.src");
    field(l3 + 24, 16, "ipv6.dst");
    if (l3 + 40 + p.ip_length > f.size())
      return "ipv6: payload length " + std::to_string(p.ip_length) + " exceeds the " +
             std::to_string(f.size() - l3 - 40) + " bytes present";
    p.ip_end = l3 + 40 + p.ip_length;
    uint8_t next = f[l3 + 6];
    size_t next_field = l3 + 6;
    off = l3 + 40;
    // Hop-by-hop, routing, destination options and Fragment; anything else is upper layer.
    while (next == 0 || next == 43 || next == 60 || next == kProtoIpv6Frag) {
      if (next == kProtoIpv6Frag) {
        if (p.has_fragment_header) return "ipv6: second Fragment header";
        if (off + 8 > p.ip_end) return "ipv6: Fragment header truncated";
        p.has_fragment_header = true;
        uint16_t offset_flags = rd16(f, off + 2);
        p.frag_offset = offset_flags & 0xfff8;
        p.more_fragments = offset_flags & 1;
        p.ip_id = rd32(f, off + 4);
        w.frag_header_offset = off;
        w.frag_next_header_field = next_field;
        w.frag_next_header = f[off];
        w.frag_data_offset = off + 8;
        field(off, 1, "ipv6.frag.next_header");
        field(off + 1, 1, "ipv6.frag.reserved");
        field(off + 2, 2, "ipv6.frag.offset_flags");
        field(off + 4, 4, "ipv6.frag.id");
        next = f[off];
        next_field = off;
        off += 8;
        // In a later fragment, whatever follows is opaque data.
        if (p.frag_offset != 0) break;
      } else {
        if (off + 2 > p.ip_end) return "ipv6: extension header truncated";
        size_t len = (f[off + 1] + 1u) * 8;
        if (off + len > p.ip_end) return "ipv6: extension header runs past the payload";
        field(off, len, "ipv6.ext" + std::to_string(next));
        next = f[off];
        next_field = off;
        off += len;
      }
    }
    p.protocol = next;
    p.l4_offset = off;
  } else {
    // ARP and anything else: not parsed further.
    rest(l3, f.size(), p.ethertype == kEthArp ? "arp" : "l3");
    p.ip_end = f.size();
    return "";
  }

  if (p.frag_offset != 0) {
    rest(p.l4_offset, p.ip_end, "fragment_data");
    return "";
  }
  return walk_l4(f, w);
}

std::string walk_l4(std::span<const uint8_t> f, Walk& w) {
  ParsedFrame& p = w.p;
  auto field = [&](size_t offset, size_t length, std::string name) {
    w.fields.push_back({offset, length, std::move(name)});
  };
  const size_t l4 = p.l4_offset;
  const size_t avail = p.ip_end - l4;
  size_t end = p.ip_end;
  std::string payload_name = "payload";

  if (p.protocol == kProtoUdp) {
    if (avail < 8) return "udp: header truncated (" + std::to_string(avail) + " bytes)";
    UdpHeader u{rd16(f, l4), rd16(f, l4 + 2), rd16(f, l4 + 4), rd16(f, l4 + 6)};
    field(l4, 2, "udp.sport");
    field(l4 + 2, 2, "udp.dport");
    field(l4 + 4, 2, "udp.length");
    field(l4 + 6, 2, "udp.checksum");
    p.udp = u;
    if (u.length < 8) return "udp: length " + std::to_string(u.length) + " is below 8";
    // A first fragment holds only part of the datagram the length describes.
    if (!p.is_fragment()) {
      if (u.length > avail)
        return "udp: length " + std::to_string(u.length) + " exceeds the " + std::to_string(avail) +
               " bytes of IP payload";
      end = l4 + u.length;
    }
    p.payload_offset = l4 + 8;
    // NAT-T (RFC 3948): on port 4500 a non-zero first word is an ESP SPI; zero is the
    // non-ESP marker of IKE, and a single 0xff byte is a keepalive.
    if ((u.sport == 4500 || u.dport == 4500) && end - p.payload_offset >= 8 &&
        rd32(f, p.payload_offset) != 0) {
      p.esp = EspHeader{rd32(f, p.payload_offset), rd32(f, p.payload_offset + 4), true};
      field(p.payload_offset, 4, "esp.spi");
      field(p.payload_offset + 4, 4, "esp.seq");
      p.payload_offset += 8;
    }
  } else if (p.protocol == kProtoEsp) {
    if (avail < 8) return "esp: header truncated (" + std::to_string(avail) + " bytes)";
    p.esp = EspHeader{rd32(f, l4), rd32(f, l4 + 4), false};
    field(l4, 4, "esp.spi");
    field(l4 + 4, 4, "esp.seq");
    p.payload_offset = l4 + 8;
  } else {
    p.payload_offset = l4;
    payload_name = p.protocol == kProtoTcp ? "tcp" : p.protocol == kProtoIcmpv6 ? "icmpv6" : "l4";
  }
  p.payload.assign(f.begin() + static_cast<std::ptrdiff_t>(p.payload_offset),
                   f.begin() + static_cast<std::ptrdiff_t>(end));
  if (end > p.payload_offset) field(p.payload_offset, end - p.payload_offset, payload_name);
  if (p.ip_end > end) field(end, p.ip_end - end, "udp.trailer");
  if (f.size() > p.ip_end) field(p.ip_end, f.size() - p.ip_end, "eth.padding");
  return "";
}

ChecksumCheck check_ipv4_header(std::span<const uint8_t> f, const ParsedFrame& p) {
  ChecksumCheck c;
  Bytes header(f.begin() + static_cast<std::ptrdiff_t>(p.l3_offset),
               f.begin() + static_cast<std::ptrdiff_t>(p.l3_offset + p.ihl * 4u));
  c.actual = rd16(header, 10);
  write16(header, 10, 0);
  c.expected = checksum_of(header);
  write16(header, 10, c.actual);
  c.verdict = fold(sum_words(header)) == 0xffff ? Verdict::kOk : Verdict::kBad;
  return c;
}

ChecksumCheck check_udp(std::span<const uint8_t> f, const ParsedFrame& p) {
  ChecksumCheck c;
  Bytes segment(f.begin() + static_cast<std::ptrdiff_t>(p.l4_offset),
                f.begin() + static_cast<std::ptrdiff_t>(p.l4_offset + p.udp->length));
  c.actual = rd16(segment, 6);
  write16(segment, 6, 0);
  c.expected = udp_checksum_of(p.src, p.dst, segment);
  write16(segment, 6, c.actual);
  if (c.actual == 0) {
    if (p.ip_version == 4) {
      c.verdict = Verdict::kNone;
    } else {
      c.verdict = Verdict::kBad;
      c.note = "IPv6 UDP needs a checksum (RFC 8200 8.1)";
    }
    return c;
  }
  Bytes pseudo = pseudo_header(p.src, p.dst, kProtoUdp, p.udp->length);
  bool ok = fold(sum_words(segment, sum_words(pseudo))) == 0xffff;
  c.verdict = ok ? Verdict::kOk : Verdict::kBad;
  return c;
}

std::string describe(const ChecksumCheck& c) {
  std::string s;
  switch (c.verdict) {
    case Verdict::kOk:
      s = "ok (" + hex16(c.actual) + ")";
      break;
    case Verdict::kNone:
      s = "none (0, allowed for IPv4)";
      break;
    case Verdict::kBad:
      s = "BAD: expected " + hex16(c.expected) + ", got " + hex16(c.actual);
      break;
    case Verdict::kNotApplicable:
      s = "n/a";
      break;
  }
  if (!c.note.empty()) s += " (" + c.note + ")";
  return s;
}

}  // namespace

// ---- addresses ----

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  std::string s(text);
  IpAddr a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes_.data()) == 1) {
    a.size_ = 4;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes_.data()) == 1) {
    a.size_ = 16;
    return a;
  }
  return std::nullopt;
}

IpAddr IpAddr::v4(std::span<const uint8_t, 4> bytes) {
  IpAddr a;
  std::copy(bytes.begin(), bytes.end(), a.bytes_.begin());
  a.size_ = 4;
  return a;
}

IpAddr IpAddr::v6(std::span<const uint8_t, 16> bytes) {
  IpAddr a;
  std::copy(bytes.begin(), bytes.end(), a.bytes_.begin());
  a.size_ = 16;
  return a;
}

std::string IpAddr::to_string() const {
  if (size_ == 0) return "(none)";
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
  return buf;
}

IpAddr ip(std::string_view text) {
  auto a = IpAddr::parse(text);
  if (!a) misuse("not an IP address: " + std::string(text));
  return *a;
}

std::optional<Mac> Mac::parse(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Mac m;
  for (size_t i = 0; i < 6; ++i) {
    int hi = nibble(text[i * 3]), lo = nibble(text[i * 3 + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && text[i * 3 + 2] != ':')) return std::nullopt;
    m.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return m;
}

std::string Mac::to_string() const {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2],
                bytes[3], bytes[4], bytes[5]);
  return buf;
}

Mac mac(std::string_view text) {
  auto m = Mac::parse(text);
  if (!m) misuse("not a MAC address: " + std::string(text));
  return *m;
}

std::ostream& operator<<(std::ostream& os, const IpAddr& a) {
  return os << a.to_string();
}
std::ostream& operator<<(std::ostream& os, const Mac& m) {
  return os << m.to_string();
}

// ---- builder ----

Frame& Frame::eth(const Mac& src, const Mac& dst) {
  src_mac_ = src;
  dst_mac_ = dst;
  return *this;
}

Frame& Frame::vlan(uint16_t vid, uint16_t tpid, uint8_t pcp) {
  if (vid > 0x0fff) misuse("VLAN id above 4095: " + std::to_string(vid));
  if (pcp > 7) misuse("VLAN PCP above 7");
  vlans_.push_back({tpid, static_cast<uint16_t>(pcp << 13 | vid)});
  return *this;
}

Frame& Frame::ipv4(const IpAddr& src, const IpAddr& dst) {
  if (!src.is_v4() || !dst.is_v4()) misuse("ipv4() needs IPv4 addresses");
  l3_ = L3::kIpv4;
  src_ = src;
  dst_ = dst;
  return *this;
}

Frame& Frame::ipv6(const IpAddr& src, const IpAddr& dst) {
  if (!src.is_v6() || !dst.is_v6()) misuse("ipv6() needs IPv6 addresses");
  l3_ = L3::kIpv6;
  src_ = src;
  dst_ = dst;
  return *this;
}

Frame& Frame::ttl(uint8_t ttl) {
  ttl_ = ttl;
  return *this;
}

Frame& Frame::tos(uint8_t tos) {
  tos_ = tos;
  return *this;
}

Frame& Frame::flow_label(uint32_t label) {
  if (label > 0xfffff) misuse("flow label wider than 20 bits");
  flow_label_ = label;
  return *this;
}

Frame& Frame::ip_id(uint32_t id) {
  ip_id_ = id;
  return *this;
}

Frame& Frame::dont_fragment(bool df) {
  df_ = df;
  return *this;
}

Frame& Frame::options(Bytes ipv4_options) {
  if (ipv4_options.size() % 4 != 0 || ipv4_options.size() > 40)
    misuse("IPv4 options must be a multiple of 4 bytes, at most 40");
  options_ = std::move(ipv4_options);
  return *this;
}

Frame& Frame::frag(uint16_t offset_bytes, bool more_fragments) {
  if (offset_bytes % 8 != 0) misuse("fragment offset must be a multiple of 8");
  frag_ = {offset_bytes, more_fragments};
  return *this;
}

Frame& Frame::udp(uint16_t sport, uint16_t dport) {
  udp_ports_ = {sport, dport};
  return *this;
}

Frame& Frame::esp(uint32_t spi, uint32_t seq) {
  esp_ = {spi, seq};
  return *this;
}

Frame& Frame::payload(Bytes bytes) {
  payload_ = std::move(bytes);
  return *this;
}

Frame& Frame::l4(uint8_t protocol, Bytes bytes) {
  raw_l4_ = {protocol, std::move(bytes)};
  return *this;
}

Frame& Frame::arp_request(const IpAddr& sender, const IpAddr& target) {
  if (!sender.is_v4() || !target.is_v4()) misuse("ARP needs IPv4 addresses");
  l3_ = L3::kArp;
  src_ = sender;
  dst_ = target;
  return *this;
}

Frame& Frame::neighbour_solicitation(const IpAddr& target) {
  if (!target.is_v6()) misuse("neighbour solicitation needs an IPv6 target");
  ns_target_ = target;
  return *this;
}

Frame& Frame::pad_to_min(bool pad) {
  pad_ = pad;
  return *this;
}

Frame& Frame::ihl(uint8_t ihl) {
  if (ihl > 15) misuse("ihl is a 4-bit field");
  ihl_ = ihl;
  return *this;
}

Frame& Frame::ip_length(uint16_t length) {
  ip_length_ = length;
  return *this;
}

Frame& Frame::ip_checksum(uint16_t checksum) {
  ip_checksum_ = checksum;
  return *this;
}

Frame& Frame::udp_length(uint16_t length) {
  udp_length_ = length;
  return *this;
}

Frame& Frame::udp_checksum(uint16_t checksum) {
  udp_checksum_ = checksum;
  return *this;
}

Frame& Frame::truncate(size_t frame_bytes) {
  truncate_ = frame_bytes;
  return *this;
}

Frame& Frame::icmp(uint8_t type, uint8_t code, uint32_t rest, Bytes body) {
  icmp_ = Icmp{type, code, rest, std::move(body)};
  return *this;
}

Frame& Frame::icmp_checksum(uint16_t checksum) {
  icmp_checksum_ = checksum;
  return *this;
}

Bytes Frame::build_l4(uint8_t& protocol) const {
  if (icmp_) {
    if (l3_ != L3::kIpv4 && l3_ != L3::kIpv6) misuse("icmp() needs ipv4() or ipv6()");
    Bytes m = {icmp_->type, icmp_->code, 0, 0};
    put32(m, icmp_->rest);
    append(m, icmp_->body);
    protocol = l3_ == L3::kIpv4 ? kProtoIcmp : kProtoIcmpv6;
    uint64_t acc =
        l3_ == L3::kIpv4
            ? 0
            : sum_words(pseudo_header(src_, dst_, kProtoIcmpv6, static_cast<uint32_t>(m.size())));
    write16(m, 2, icmp_checksum_ ? *icmp_checksum_ : checksum_of(m, acc));
    return m;
  }
  if (raw_l4_) {
    protocol = raw_l4_->first;
    return raw_l4_->second;
  }
  if (ns_target_.is_v6()) {
    if (l3_ != L3::kIpv6) misuse("neighbour_solicitation() needs ipv6()");
    Bytes m = {135, 0, 0, 0, 0, 0, 0, 0};  // type, code, checksum, reserved
    append(m, ns_target_.bytes());
    m.push_back(1);  // source link-layer address option, 1 x 8 bytes
    m.push_back(1);
    append(m, src_mac_.bytes);
    Bytes pseudo = pseudo_header(src_, dst_, kProtoIcmpv6, static_cast<uint32_t>(m.size()));
    write16(m, 2, checksum_of(m, sum_words(pseudo)));
    protocol = kProtoIcmpv6;
    return m;
  }
  Bytes inner;
  if (esp_) {
    put32(inner, esp_->first);
    put32(inner, esp_->second);
  }
  append(inner, payload_);
  if (udp_ports_) {
    Bytes seg;
    put16(seg, udp_ports_->first);
    put16(seg, udp_ports_->second);
    if (inner.size() + 8 > 0xffff) misuse("UDP datagram longer than 65535 bytes");
    put16(seg, udp_length_.value_or(static_cast<uint16_t>(inner.size() + 8)));
    put16(seg, 0);
    append(seg, inner);
    write16(seg, 6, udp_checksum_ ? *udp_checksum_ : udp_checksum_of(src_, dst_, seg));
    protocol = kProtoUdp;
    return seg;
  }
  if (esp_) {
    protocol = kProtoEsp;
    return inner;
  }
  misuse("no L4: call udp(), esp(), l4() or neighbour_solicitation()");
}

Bytes Frame::build() const {
  Bytes out;
  append(out, dst_mac_.bytes);
  append(out, src_mac_.bytes);
  for (const VlanTag& tag : vlans_) {
    put16(out, tag.tpid);
    put16(out, tag.tci);
  }
  switch (l3_) {
    case L3::kNone:
      misuse("no L3: call ipv4(), ipv6() or arp_request()");
    case L3::kArp:
      put16(out, kEthArp);
      put16(out, 1);  // Ethernet
      put16(out, kEthIpv4);
      out.push_back(6);
      out.push_back(4);
      put16(out, 1);  // request
      append(out, src_mac_.bytes);
      append(out, src_.bytes());
      out.insert(out.end(), 6, 0);
      append(out, dst_.bytes());
      break;
    case L3::kIpv4: {
      if (ip_id_ > 0xffff) misuse("IPv4 id wider than 16 bits");
      put16(out, kEthIpv4);
      uint8_t protocol = 0;
      Bytes l4 = build_l4(protocol);
      const size_t l3 = out.size();
      const size_t hl = 20 + options_.size();
      if (hl + l4.size() > 0xffff) misuse("IPv4 packet longer than 65535 bytes");
      out.push_back(static_cast<uint8_t>(0x40 | ihl_.value_or(static_cast<uint8_t>(hl / 4))));
      out.push_back(tos_);
      put16(out, ip_length_.value_or(static_cast<uint16_t>(hl + l4.size())));
      put16(out, static_cast<uint16_t>(ip_id_));
      uint16_t flags = df_ ? 0x4000 : 0;
      if (frag_) flags |= static_cast<uint16_t>((frag_->second ? 0x2000 : 0) | frag_->first / 8);
      put16(out, flags);
      out.push_back(ttl_);
      out.push_back(protocol);
      put16(out, 0);
      append(out, src_.bytes());
      append(out, dst_.bytes());
      append(out, options_);
      write16(out, l3 + 10,
              ip_checksum_ ? *ip_checksum_ : checksum_of(std::span(out).subspan(l3, hl)));
      append(out, l4);
      break;
    }
    case L3::kIpv6: {
      put16(out, kEthIpv6);
      uint8_t protocol = 0;
      Bytes l4 = build_l4(protocol);
      Bytes ext;
      if (frag_) {
        ext.push_back(protocol);
        ext.push_back(0);
        put16(ext, static_cast<uint16_t>(frag_->first | (frag_->second ? 1 : 0)));
        put32(ext, ip_id_);
        protocol = kProtoIpv6Frag;
      }
      const size_t payload_length = ext.size() + l4.size();
      if (payload_length > 0xffff) misuse("IPv6 payload longer than 65535 bytes");
      put32(out, 6u << 28 | static_cast<uint32_t>(tos_) << 20 | flow_label_);
      put16(out, ip_length_.value_or(static_cast<uint16_t>(payload_length)));
      out.push_back(protocol);
      out.push_back(ttl_);
      append(out, src_.bytes());
      append(out, dst_.bytes());
      append(out, ext);
      append(out, l4);
      break;
    }
  }
  if (pad_ && out.size() < 60) out.resize(60, 0);
  if (truncate_ && *truncate_ < out.size()) out.resize(*truncate_);
  return out;
}

std::vector<Bytes> Frame::build_fragments(size_t fragment_bytes) const {
  if (fragment_bytes == 0 || fragment_bytes % 8 != 0)
    misuse("fragment size must be a non-zero multiple of 8");
  if (frag_) misuse("build_fragments() on a frame that is already a fragment");
  if (l3_ != L3::kIpv4 && l3_ != L3::kIpv6) misuse("build_fragments() needs ipv4() or ipv6()");
  uint8_t protocol = 0;
  const Bytes data = build_l4(protocol);

  // RFC 791: only options with the copy flag are repeated in later fragments.
  Bytes copied;
  for (size_t i = 0; i < options_.size();) {
    uint8_t type = options_[i];
    if (type == 0) break;  // end of option list
    if (type == 1) {       // no-operation
      ++i;
      continue;
    }
    if (i + 1 >= options_.size() || options_[i + 1] < 2 || i + options_[i + 1] > options_.size())
      break;
    if (type & 0x80)
      copied.insert(copied.end(), options_.begin() + static_cast<std::ptrdiff_t>(i),
                    options_.begin() + static_cast<std::ptrdiff_t>(i) + options_[i + 1]);
    i += options_[i + 1];
  }
  copied.resize((copied.size() + 3) / 4 * 4, 0);

  std::vector<Bytes> frames;
  size_t offset = 0;
  do {
    if (offset > 0xfff8) misuse("fragment offset beyond 65528");
    size_t n = std::min(fragment_bytes, data.size() - offset);
    Frame f = *this;
    f.raw_l4_ = {protocol, Bytes(data.begin() + static_cast<std::ptrdiff_t>(offset),
                                 data.begin() + static_cast<std::ptrdiff_t>(offset + n))};
    f.frag_ = {static_cast<uint16_t>(offset), offset + n < data.size()};
    if (offset > 0) f.options_ = copied;
    frames.push_back(f.build());
    offset += n;
  } while (offset < data.size());
  return frames;
}

Frame arp_request(const Mac& src, const IpAddr& sender, const IpAddr& target) {
  return Frame().eth(src, kBroadcastMac).arp_request(sender, target);
}

Frame neighbour_solicitation(const Mac& src, const IpAddr& src_ip, const IpAddr& target) {
  if (!target.is_v6()) misuse("neighbour solicitation needs an IPv6 target");
  auto t = target.bytes();
  // RFC 4291 2.7.1: ff02::1:ffXX:XXXX and its RFC 2464 multicast MAC 33:33:ff:XX:XX:XX.
  std::array<uint8_t, 16> group = {0xff, 0x02, 0, 0, 0,    0,     0,     0,
                                   0,    0,    0, 1, 0xff, t[13], t[14], t[15]};
  Mac group_mac{{0x33, 0x33, 0xff, t[13], t[14], t[15]}};
  return Frame()
      .eth(src, group_mac)
      .ipv6(src_ip, IpAddr::v6(group))
      .hop_limit(255)
      .neighbour_solicitation(target);
}

// ---- parser and verifier ----

Result<ParsedFrame> parse_frame(std::span<const uint8_t> frame) {
  Walk w;
  std::string error = walk(frame, w);
  if (!error.empty()) return Result<ParsedFrame>::failure(error);
  return std::move(w.p);
}

bool ChecksumReport::ok() const {
  return error.empty() && ipv4_header.verdict != Verdict::kBad && udp.verdict != Verdict::kBad &&
         icmp.verdict != Verdict::kBad && quoted_ipv4_header.verdict != Verdict::kBad;
}

std::string ChecksumReport::to_string() const {
  if (!error.empty()) return "malformed: " + error;
  return "ipv4 header checksum: " + describe(ipv4_header) + "; udp checksum: " + describe(udp) +
         "; icmp checksum: " + describe(icmp) +
         "; quoted ipv4 header checksum: " + describe(quoted_ipv4_header);
}

Bytes ip_packet(std::span<const uint8_t> frame, size_t max) {
  auto p = parse_frame(frame);
  if (!p || p->ip_version == 0) misuse("ip_packet(): not an IP frame");
  size_t n = std::min(p->ip_end - p->l3_offset, max);
  return Bytes(frame.begin() + static_cast<std::ptrdiff_t>(p->l3_offset),
               frame.begin() + static_cast<std::ptrdiff_t>(p->l3_offset + n));
}

namespace {

// The ICMP checksum over the whole message (ICMPv6: with its pseudo-header), and for an error
// that quotes a complete IPv4 header, that header's checksum.
void check_icmp(std::span<const uint8_t> f, const ParsedFrame& p, ChecksumReport& r) {
  Bytes m(f.begin() + static_cast<std::ptrdiff_t>(p.l4_offset),
          f.begin() + static_cast<std::ptrdiff_t>(p.ip_end));
  if (m.size() < 8) {
    r.icmp.verdict = Verdict::kBad;
    r.icmp.note = "shorter than an ICMP header";
    return;
  }
  uint64_t acc =
      p.ip_version == 4
          ? 0
          : sum_words(pseudo_header(p.src, p.dst, kProtoIcmpv6, static_cast<uint32_t>(m.size())));
  r.icmp.actual = rd16(m, 2);
  write16(m, 2, 0);
  r.icmp.expected = checksum_of(m, acc);
  write16(m, 2, r.icmp.actual);
  r.icmp.verdict = fold(sum_words(m, acc)) == 0xffff ? Verdict::kOk : Verdict::kBad;
  bool error = p.ip_version == 4 ? (m[0] == 3 || m[0] == 11) : (m[0] >= 1 && m[0] <= 4);
  if (!error || m.size() < 8 + 20 || (m[8] >> 4) != 4) {
    r.quoted_ipv4_header.note = "no quoted IPv4 header";
    return;
  }
  size_t ihl = (m[8] & 0x0f) * 4u;
  if (ihl < 20 || m.size() < 8 + ihl) {
    r.quoted_ipv4_header.verdict = Verdict::kBad;
    r.quoted_ipv4_header.note = "quoted IPv4 header cut short";
    return;
  }
  Bytes header(m.begin() + 8, m.begin() + 8 + static_cast<std::ptrdiff_t>(ihl));
  r.quoted_ipv4_header.actual = rd16(header, 10);
  write16(header, 10, 0);
  r.quoted_ipv4_header.expected = checksum_of(header);
  write16(header, 10, r.quoted_ipv4_header.actual);
  r.quoted_ipv4_header.verdict = fold(sum_words(header)) == 0xffff ? Verdict::kOk : Verdict::kBad;
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const ChecksumReport& r) {
  return os << r.to_string();
}

ChecksumReport verify_checksums(std::span<const uint8_t> frame) {
  ChecksumReport r;
  Walk w;
  r.error = walk(frame, w);
  if (!r.error.empty()) return r;
  const ParsedFrame& p = w.p;
  if (p.ip_version == 0) {
    r.ipv4_header.note = r.udp.note = "not IP";
    return r;
  }
  if (p.ip_version == 4)
    r.ipv4_header = check_ipv4_header(frame, p);
  else
    r.ipv4_header.note = "IPv6";
  if (!p.udp)
    r.udp.note = "not UDP";
  else if (p.is_fragment())
    r.udp.note = "fragment: use verify_fragmented_udp";
  else
    r.udp = check_udp(frame, p);
  const uint8_t icmp_proto = p.ip_version == 4 ? kProtoIcmp : kProtoIcmpv6;
  if (p.protocol == icmp_proto && !p.is_fragment())
    check_icmp(frame, p, r);
  else
    r.icmp.note = r.quoted_ipv4_header.note = "not ICMP";
  return r;
}

Result<Bytes> reassemble(std::span<const Bytes> fragments) {
  using R = Result<Bytes>;
  if (fragments.empty()) return R::failure("no fragments");
  std::vector<Walk> walks(fragments.size());
  for (size_t i = 0; i < fragments.size(); ++i) {
    std::string error = walk(fragments[i], walks[i]);
    std::string which = "fragment #" + std::to_string(i) + ": ";
    if (!error.empty()) return R::failure(which + error);
    const ParsedFrame& p = walks[i].p;
    const ParsedFrame& p0 = walks[0].p;
    if (p.ip_version == 0) return R::failure(which + "not IP");
    if (!p.is_fragment()) return R::failure(which + "not a fragment");
    if (p.ip_version != p0.ip_version || p.src != p0.src || p.dst != p0.dst || p.ip_id != p0.ip_id)
      return R::failure(which + "(version, src, dst, id) differs from fragment #0's");
    uint8_t proto = p.ip_version == 4 ? p.protocol : walks[i].frag_next_header;
    uint8_t proto0 = p0.ip_version == 4 ? p0.protocol : walks[0].frag_next_header;
    if (proto != proto0) return R::failure(which + "protocol differs from fragment #0's");
  }
  std::vector<size_t> order(fragments.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return walks[a].p.frag_offset < walks[b].p.frag_offset; });

  Bytes data;
  for (size_t k = 0; k < order.size(); ++k) {
    const Walk& w = walks[order[k]];
    std::string which = "fragment #" + std::to_string(order[k]) + ": ";
    if (w.p.frag_offset != data.size())
      return R::failure(which + "offset " + std::to_string(w.p.frag_offset) +
                        (w.p.frag_offset > data.size() ? " leaves a hole" : " overlaps") +
                        " after " + std::to_string(data.size()) + " bytes");
    const bool last = k + 1 == order.size();
    if (w.p.more_fragments == last)
      return R::failure(which + (last ? "last fragment has MF set" : "MF clear before the end"));
    size_t n = w.p.ip_end - w.frag_data_offset;
    if (!last && n % 8 != 0) return R::failure(which + "length is not a multiple of 8");
    const Bytes& f = fragments[order[k]];
    data.insert(data.end(), f.begin() + static_cast<std::ptrdiff_t>(w.frag_data_offset),
                f.begin() + static_cast<std::ptrdiff_t>(w.p.ip_end));
  }

  const Walk& first = walks[order[0]];
  const Bytes& ff = fragments[order[0]];
  const size_t l3 = first.p.l3_offset;
  Bytes out;
  if (first.p.ip_version == 4) {
    out.assign(ff.begin(), ff.begin() + static_cast<std::ptrdiff_t>(first.frag_data_offset));
    size_t total = first.frag_data_offset - l3 + data.size();
    if (total > 0xffff) return R::failure("reassembled packet longer than 65535 bytes");
    write16(out, l3 + 2, static_cast<uint16_t>(total));
    write16(out, l3 + 6, rd16(out, l3 + 6) & 0xc000);  // keep reserved and DF
    write16(out, l3 + 10, 0);
    write16(out, l3 + 10, checksum_of(std::span(out).subspan(l3, first.frag_data_offset - l3)));
  } else {
    out.assign(ff.begin(), ff.begin() + static_cast<std::ptrdiff_t>(first.frag_header_offset));
    out[first.frag_next_header_field] = first.frag_next_header;
    size_t payload = first.frag_header_offset - (l3 + 40) + data.size();
    if (payload > 0xffff) return R::failure("reassembled payload longer than 65535 bytes");
    write16(out, l3 + 4, static_cast<uint16_t>(payload));
  }
  append(out, data);
  return out;
}

ChecksumReport verify_fragmented_udp(std::span<const Bytes> fragments) {
  ChecksumReport r;
  r.ipv4_header.note = "IPv6";
  for (size_t i = 0; i < fragments.size(); ++i) {
    Walk w;
    if (!walk(fragments[i], w).empty() || w.p.ip_version != 4) continue;
    ChecksumCheck c = check_ipv4_header(fragments[i], w.p);
    c.note = "fragment #" + std::to_string(i);
    if (c.verdict == Verdict::kBad) {
      r.ipv4_header = c;
      break;
    }
    if (i == 0) {
      r.ipv4_header = c;
      r.ipv4_header.note = "all " + std::to_string(fragments.size()) + " fragments";
    }
  }
  Result<Bytes> whole = reassemble(fragments);
  if (!whole) {
    r.error = whole.error();
    return r;
  }
  ChecksumReport inner = verify_checksums(*whole);
  if (!inner.error.empty()) {
    r.error = "reassembled datagram: " + inner.error;
  } else if (inner.udp.verdict == Verdict::kNotApplicable) {
    r.error = "reassembled datagram: " + inner.udp.note;
  } else {
    r.udp = inner.udp;
  }
  return r;
}

// ---- diff and hex ----

std::string hex(std::span<const uint8_t> bytes) {
  std::string s;
  char buf[4];
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%02x", bytes[i]);
    if (i > 0) s += ' ';
    s += buf;
  }
  return s;
}

std::string hex_dump(std::span<const uint8_t> bytes) {
  std::string s;
  char buf[24];
  for (size_t i = 0; i < bytes.size(); i += 16) {
    std::snprintf(buf, sizeof buf, "%04zx: ", i);
    s += buf;
    s += hex(bytes.subspan(i, std::min<size_t>(16, bytes.size() - i)));
    s += '\n';
  }
  return s;
}

Bytes from_hex(std::string_view text) {
  Bytes out;
  int pending = -1;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') continue;
    int v = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (v < 0) misuse(std::string("not a hex digit: ") + c);
    if (pending < 0) {
      pending = v;
    } else {
      out.push_back(static_cast<uint8_t>(pending << 4 | v));
      pending = -1;
    }
  }
  if (pending >= 0) misuse("odd number of hex digits");
  return out;
}

std::string describe_diff(std::span<const uint8_t> expected, std::span<const uint8_t> actual) {
  if (std::equal(expected.begin(), expected.end(), actual.begin(), actual.end())) return "";
  // Field names come from the expected frame: it is the one the test author designed.
  Walk w;
  (void)walk(expected, w);
  auto field_at = [&](size_t offset) -> const Field* {
    for (const Field& f : w.fields)
      if (offset >= f.offset && offset < f.offset + f.length) return &f;
    return nullptr;
  };

  constexpr size_t kMaxShown = 8;
  constexpr size_t kWide = 16;  // longer fields (payload) are shown as runs of differing bytes
  std::ostringstream os;
  os << "frames differ: expected " << expected.size() << " bytes, actual " << actual.size()
     << " bytes\n";
  const size_t common = std::min(expected.size(), actual.size());
  size_t shown = 0, hidden = 0;
  for (size_t i = 0; i < common;) {
    if (expected[i] == actual[i]) {
      ++i;
      continue;
    }
    const Field* f = field_at(i);
    size_t begin = i, end = i;
    std::string name;
    if (f && f->length <= kWide) {
      begin = f->offset;
      end = std::min(f->offset + f->length, common);
      name = f->name;
    } else {
      while (end < common && end - begin < kWide && expected[end] != actual[end]) ++end;
      name = f ? f->name + "+" + std::to_string(begin - f->offset) : "unparsed";
    }
    if (shown < kMaxShown) {
      os << "offset " << begin << " (" << name << "): expected "
         << hex(expected.subspan(begin, end - begin)) << " got "
         << hex(actual.subspan(begin, end - begin)) << '\n';
      ++shown;
    } else {
      ++hidden;
    }
    i = end;
  }
  if (hidden > 0) os << "... and " << hidden << " more differing fields\n";
  if (expected.size() != actual.size()) {
    const bool longer = actual.size() > expected.size();
    const auto& tail = longer ? actual : expected;
    const Field* f = field_at(common);
    os << "offset " << common << (f ? " (" + f->name + ")" : std::string()) << ": "
       << (longer ? "actual has " : "actual lacks ") << tail.size() - common
       << " bytes: " << hex(tail.subspan(common, std::min(kWide, tail.size() - common)))
       << (tail.size() - common > kWide ? " ..." : "") << '\n';
  }
  constexpr size_t kDumpBytes = 128;  // the headers; a full-MTU dump would drown the message
  os << "expected:\n"
     << hex_dump(expected.first(std::min(kDumpBytes, expected.size()))) << "actual:\n"
     << hex_dump(actual.first(std::min(kDumpBytes, actual.size())));
  return os.str();
}

}  // namespace ikelb::test
