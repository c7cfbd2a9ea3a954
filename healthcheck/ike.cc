// IKEv2 IKE_SA_INIT probe encoder and response decoder. Wire layout: ../shared/IKE_NOTES.md.
#include "ike.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace ikelb::ike {
namespace {

constexpr size_t kHeaderLen = 28, kGenericHeaderLen = 4, kMarkerLen = 4;
constexpr size_t kMaxPayloads = 64;
constexpr uint8_t kVersion = 0x20, kExchangeIkeSaInit = 34;
constexpr uint8_t kFlagInitiator = 0x08, kFlagResponse = 0x20;
constexpr uint8_t kPayloadNone = 0, kPayloadSa = 33, kPayloadKe = 34, kPayloadNonce = 40,
                  kPayloadNotify = 41;
constexpr uint8_t kTransformEncr = 1, kTransformPrf = 2, kTransformInteg = 3, kTransformDh = 4;
constexpr uint8_t kLastTransform = 0, kMoreTransforms = 3, kLastProposal = 0, kMoreProposals = 2;
constexpr uint8_t kProtocolIke = 1;
constexpr uint16_t kAttrKeyLength = 0x800e;  // TV format bit + type 14
constexpr size_t kMinNonce = 16, kMaxNonce = 256;
constexpr uint16_t kFirstStatusNotify = 16384;

// Appends big-endian fields and patches 16/32-bit lengths afterwards.
class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) {
    u8(static_cast<uint8_t>(v >> 8));
    u8(static_cast<uint8_t>(v));
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    u16(static_cast<uint16_t>(v));
  }
  void bytes(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  size_t size() const { return out_.size(); }
  // Writes the length of everything from `start` to the end into the 16-bit field at `at`.
  void patch16(size_t at, size_t start) {
    const size_t len = out_.size() - start;
    if (len > 0xffff) throw std::invalid_argument("IKE request: a payload exceeds 65535 bytes");
    out_[at] = static_cast<uint8_t>(len >> 8);
    out_[at + 1] = static_cast<uint8_t>(len);
  }
  void patch32(size_t at, size_t start) {
    const size_t len = out_.size() - start;
    for (int i = 0; i < 4; ++i) out_[at + i] = static_cast<uint8_t>(len >> (24 - 8 * i));
  }
  Bytes take() { return std::move(out_); }

 private:
  Bytes out_;
};

// Generic payload header; returns the offset of the payload start (length patched by caller).
size_t begin_payload(Writer& w, uint8_t next_payload) {
  const size_t start = w.size();
  w.u8(next_payload);
  w.u8(0);  // critical bit clear, reserved
  w.u16(0);
  return start;
}

void transform(Writer& w, bool last, uint8_t type, uint16_t id, uint16_t key_bits = 0) {
  const size_t start = w.size();
  w.u8(last ? kLastTransform : kMoreTransforms);
  w.u8(0);
  w.u16(0);
  w.u8(type);
  w.u8(0);
  w.u16(id);
  if (key_bits != 0) {
    w.u16(kAttrKeyLength);
    w.u16(key_bits);
  }
  w.patch16(start + 2, start);
}

void proposal(Writer& w, const Proposal& p, uint8_t number, bool last) {
  const size_t count = 2 + (p.integ != 0 ? 1 : 0) + p.groups.size();
  if (count > 0xff)
    throw std::invalid_argument("IKE request: proposal " + std::to_string(number) +
                                " has more than 255 transforms");
  const size_t start = w.size();
  w.u8(last ? kLastProposal : kMoreProposals);
  w.u8(0);
  w.u16(0);
  w.u8(number);
  w.u8(kProtocolIke);
  w.u8(0);  // SPI size: 0 for a new IKE SA
  w.u8(static_cast<uint8_t>(count));
  transform(w, false, kTransformEncr, p.encr, p.encr_key_bits);
  transform(w, false, kTransformPrf, p.prf);
  if (p.integ != 0) transform(w, false, kTransformInteg, p.integ);
  for (size_t i = 0; i < p.groups.size(); ++i)
    transform(w, i + 1 == p.groups.size(), kTransformDh, p.groups[i]);
  w.patch16(start + 2, start);
}

void notify(Writer& w, uint8_t next_payload, uint16_t type, std::span<const uint8_t> data) {
  const size_t start = begin_payload(w, next_payload);
  w.u8(0);  // protocol ID: none (IKE SA)
  w.u8(0);  // SPI size
  w.u16(type);
  w.bytes(data);
  w.patch16(start + 2, start);
}

void validate(const ProbeRequest& r) {
  auto fail = [](const std::string& what) { throw std::invalid_argument("IKE request: " + what); };
  if (std::all_of(r.spi_i.begin(), r.spi_i.end(), [](uint8_t b) { return b == 0; }))
    fail("initiator SPI is zero");
  if (r.proposals.empty()) fail("no proposals");
  if (r.proposals.size() > 0xff) fail("more than 255 proposals");
  bool offered = false;
  for (size_t i = 0; i < r.proposals.size(); ++i) {
    const auto& groups = r.proposals[i].groups;
    if (groups.empty()) fail("proposal " + std::to_string(i + 1) + " offers no DH group");
    offered = offered || std::find(groups.begin(), groups.end(), r.ke_group) != groups.end();
  }
  const size_t ke_len = ke_length(r.ke_group);
  if (ke_len == 0) fail("unsupported KE group " + std::to_string(r.ke_group));
  if (!offered) fail("KE group " + std::to_string(r.ke_group) + " is not offered in any proposal");
  if (r.ke_data.size() != ke_len)
    fail("KE data for group " + std::to_string(r.ke_group) + " is " +
         std::to_string(r.ke_data.size()) + " bytes, expected " + std::to_string(ke_len));
  if (r.nonce.size() < kMinNonce || r.nonce.size() > kMaxNonce)
    fail("nonce is " + std::to_string(r.nonce.size()) + " bytes, expected 16..256");
}

uint16_t get16(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint16_t>(b[at] << 8 | b[at + 1]);
}
uint32_t get32(std::span<const uint8_t> b, size_t at) {
  return static_cast<uint32_t>(get16(b, at)) << 16 | get16(b, at + 2);
}

std::string hex8(uint8_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  return std::string("0x") + kDigits[v >> 4] + kDigits[v & 0xf];
}

std::string notify_name(uint16_t type) {
  switch (type) {
    case kInvalidMajorVersion:
      return "INVALID_MAJOR_VERSION";
    case kInvalidSyntax:
      return "INVALID_SYNTAX";
    case kNoProposalChosen:
      return "NO_PROPOSAL_CHOSEN";
    case kInvalidKePayload:
      return "INVALID_KE_PAYLOAD";
    case 1:
      return "UNSUPPORTED_CRITICAL_PAYLOAD";
    case 4:
      return "INVALID_IKE_SPI";
    case 9:
      return "INVALID_MESSAGE_ID";
    case 11:
      return "INVALID_SPI";
    case 24:
      return "AUTHENTICATION_FAILED";
    case 34:
      return "SINGLE_PAIR_REQUIRED";
    case 35:
      return "NO_ADDITIONAL_SAS";
    case 36:
      return "INTERNAL_ADDRESS_FAILURE";
    case 37:
      return "FAILED_CP_REQUIRED";
    case 38:
      return "TS_UNACCEPTABLE";
    case 39:
      return "INVALID_SELECTORS";
    case 43:
      return "TEMPORARY_FAILURE";
    case 44:
      return "CHILD_SA_NOT_FOUND";
    default:
      return "error notify " + std::to_string(type);
  }
}

}  // namespace

size_t ke_length(uint16_t group) {
  switch (group) {
    case kGroupModp1024:
      return 128;
    case kGroupModp2048:
      return 256;
    case kGroupEcp256:
      return 64;
    case kGroupEcp384:
      return 96;
    case kGroupX25519:
      return 32;
    default:
      return 0;
  }
}

Bytes encode_request(const ProbeRequest& r) {
  validate(r);
  Writer w;
  if (r.non_esp_marker) w.u32(0);
  const size_t ike_start = w.size();

  // Header.
  w.bytes(r.spi_i);
  w.u32(0);  // responder SPI: 0
  w.u32(0);
  w.u8(kPayloadSa);
  w.u8(kVersion);
  w.u8(kExchangeIkeSaInit);
  w.u8(kFlagInitiator);
  w.u32(0);  // message ID
  const size_t length_at = w.size();
  w.u32(0);

  // SA.
  size_t start = begin_payload(w, kPayloadKe);
  for (size_t i = 0; i < r.proposals.size(); ++i)
    proposal(w, r.proposals[i], static_cast<uint8_t>(i + 1), i + 1 == r.proposals.size());
  w.patch16(start + 2, start);

  // KE.
  start = begin_payload(w, kPayloadNonce);
  w.u16(r.ke_group);
  w.u16(0);
  w.bytes(r.ke_data);
  w.patch16(start + 2, start);

  // Nonce, then the optional notifies, each naming the next.
  const uint8_t after_nonce =
      r.nat_detection || r.redirect_supported ? kPayloadNotify : kPayloadNone;
  start = begin_payload(w, after_nonce);
  w.bytes(r.nonce);
  w.patch16(start + 2, start);

  if (r.nat_detection) {
    notify(w, kPayloadNotify, kNatDetectionSourceIp, r.nat_source_hash);
    notify(w, r.redirect_supported ? kPayloadNotify : kPayloadNone, kNatDetectionDestinationIp,
           r.nat_destination_hash);
  }
  if (r.redirect_supported) notify(w, kPayloadNone, kRedirectSupported, {});

  w.patch32(length_at, ike_start);
  return w.take();
}

std::string_view to_string(ResultKind kind) {
  switch (kind) {
    case ResultKind::kIkeResponse:
      return "ike_response";
    case ResultKind::kInvalidKe:
      return "invalid_ke";
    case ResultKind::kCookie:
      return "cookie";
    case ResultKind::kNoProposalChosen:
      return "no_proposal_chosen";
    case ResultKind::kRedirect:
      return "redirect";
    case ResultKind::kInvalidSyntax:
      return "invalid_syntax";
    case ResultKind::kInvalidMajorVersion:
      return "invalid_major_version";
    case ResultKind::kMalformed:
      return "malformed";
  }
  return "unknown";
}

ProbeResult decode_response(std::span<const uint8_t> d, const std::array<uint8_t, 8>& spi_i,
                            bool non_esp_marker) {
  ProbeResult r;
  auto malformed = [&r](std::string detail) {
    r.kind = ResultKind::kMalformed;
    r.detail = std::move(detail);
    return r;
  };

  if (non_esp_marker) {
    if (d.size() < kMarkerLen) return malformed("truncated non-ESP marker");
    if (d[0] != 0 || d[1] != 0 || d[2] != 0 || d[3] != 0)
      return malformed("missing non-ESP marker");
    d = d.subspan(kMarkerLen);
  }

  // Header.
  if (d.size() < kHeaderLen)
    return malformed("truncated header (" + std::to_string(d.size()) + " bytes)");
  if (!std::equal(spi_i.begin(), spi_i.end(), d.begin())) return malformed("SPIi mismatch");
  std::copy_n(d.begin() + 8, 8, r.spi_r.begin());
  const uint8_t version = d[17], exchange = d[18], flags = d[19];
  // RFC 7296 §3.1: the minor version of a received message is ignored.
  if (version >> 4 != kVersion >> 4) return malformed("version " + hex8(version) + " is not 2.x");
  if (exchange != kExchangeIkeSaInit)
    return malformed("exchange " + std::to_string(exchange) + " is not IKE_SA_INIT");
  if (!(flags & kFlagResponse)) return malformed("R flag clear (flags " + hex8(flags) + ")");
  if (flags & kFlagInitiator) return malformed("I flag set (flags " + hex8(flags) + ")");
  if (const uint32_t id = get32(d, 20); id != 0)
    return malformed("message ID " + std::to_string(id) + " != 0");
  if (const uint32_t len = get32(d, 24); len != d.size())
    return malformed("length field " + std::to_string(len) + " != datagram " +
                     std::to_string(d.size()));

  // Payload chain.
  bool sa = false, ke = false, nonce = false;
  std::optional<uint16_t> wanted_group;
  uint8_t next = d[16];
  size_t at = kHeaderLen, index = 0;
  while (next != kPayloadNone) {
    ++index;
    const uint8_t type = next;
    auto name = [index, type] {
      return "payload " + std::to_string(index) + " (type " + std::to_string(type) + ")";
    };
    if (index > kMaxPayloads)
      return malformed("more than " + std::to_string(kMaxPayloads) + " payloads");
    if (d.size() - at < kGenericHeaderLen) return malformed(name() + " header is truncated");
    const size_t len = get16(d, at + 2);
    if (len < kGenericHeaderLen)
      return malformed(name() + " length " + std::to_string(len) + " < 4");
    if (len > d.size() - at) return malformed(name() + " overruns the datagram");
    const auto p = d.subspan(at, len);
    next = p[0];
    at += len;

    auto first = [](bool& seen) { return !std::exchange(seen, true); };
    switch (type) {
      case kPayloadSa:
        if (!first(sa)) return malformed("duplicate SA payload");
        if (len < kGenericHeaderLen + 8) return malformed(name() + ": SA without a proposal");
        break;
      case kPayloadKe:
        if (!first(ke)) return malformed("duplicate KE payload");
        if (len <= kGenericHeaderLen + 4) return malformed(name() + ": KE without a public value");
        break;
      case kPayloadNonce:
        if (!first(nonce)) return malformed("duplicate Nonce payload");
        if (len - kGenericHeaderLen < kMinNonce || len - kGenericHeaderLen > kMaxNonce)
          return malformed(name() + ": nonce of " + std::to_string(len - kGenericHeaderLen) +
                           " bytes");
        break;
      case kPayloadNotify: {
        if (len < 8) return malformed(name() + ": notify of " + std::to_string(len) + " bytes");
        const size_t spi_size = p[5];
        const uint16_t notify_type = get16(p, 6);
        if (8 + spi_size > len) return malformed(name() + ": notify SPI overruns the payload");
        const auto data = p.subspan(8 + spi_size);
        if (notify_type == kInvalidKePayload) {
          if (data.size() != 2)
            return malformed(name() + ": INVALID_KE_PAYLOAD data of " +
                             std::to_string(data.size()) + " bytes, expected 2");
          if (!wanted_group) wanted_group = get16(data, 0);
        }
        r.notifies.push_back(notify_type);
        break;
      }
      default:  // Vendor ID, CERTREQ, ...: not needed to judge liveness
        break;
    }
  }
  if (at != d.size())
    return malformed(std::to_string(d.size() - at) + " trailing bytes after the last payload");

  // Classification: error notifies first (in a fixed order), then COOKIE, REDIRECT, a response.
  auto has = [&r](uint16_t type) {
    return std::find(r.notifies.begin(), r.notifies.end(), type) != r.notifies.end();
  };
  if (has(kInvalidKePayload)) {
    r.kind = ResultKind::kInvalidKe;
    r.group = wanted_group;
    return r;
  }
  if (has(kNoProposalChosen)) {
    r.kind = ResultKind::kNoProposalChosen;
    return r;
  }
  if (has(kInvalidSyntax)) {
    r.kind = ResultKind::kInvalidSyntax;
    return r;
  }
  if (has(kInvalidMajorVersion)) {
    r.kind = ResultKind::kInvalidMajorVersion;
    return r;
  }
  for (const uint16_t type : r.notifies)
    if (type < kFirstStatusNotify) return malformed("unexpected " + notify_name(type));
  if (has(kCookie)) {
    r.kind = ResultKind::kCookie;
    return r;
  }
  if (has(kRedirect)) {
    r.kind = ResultKind::kRedirect;
    return r;
  }
  if (!sa) return malformed("no SA payload");
  if (!ke) return malformed("no KE payload");
  if (!nonce) return malformed("no Nonce payload");
  if (std::all_of(r.spi_r.begin(), r.spi_r.end(), [](uint8_t b) { return b == 0; }))
    return malformed("responder SPI is zero");
  r.kind = ResultKind::kIkeResponse;
  return r;
}

}  // namespace ikelb::ike
