#include "ike.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ikelb::ike {
namespace {

using Spi = std::array<uint8_t, 8>;

constexpr Spi kSpi{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8};
constexpr Spi kSpiR{0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8};

// Hex digits; spaces, newlines and '|' are ignored.
Bytes hex(std::string_view text) {
  Bytes out;
  int high = -1;
  for (const char c : text) {
    int v;
    if (c >= '0' && c <= '9')
      v = c - '0';
    else if (c >= 'a' && c <= 'f')
      v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v = c - 'A' + 10;
    else if (c == ' ' || c == '\n' || c == '|')
      continue;
    else
      throw std::invalid_argument(std::string("bad hex character ") + c);
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<uint8_t>(high << 4 | v));
      high = -1;
    }
  }
  if (high >= 0) throw std::invalid_argument("odd number of hex digits");
  return out;
}

// first, first + 1, ... (n bytes).
Bytes seq(uint8_t first, size_t n) {
  Bytes out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(first + i);
  return out;
}

template <size_t N>
std::array<uint8_t, N> arr(const Bytes& b) {
  std::array<uint8_t, N> out{};
  std::copy_n(b.begin(), N, out.begin());
  return out;
}

std::string to_hex(const Bytes& b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < b.size(); ++i) {
    if (i > 0 && i % 4 == 0) s += i % 16 == 0 ? '\n' : ' ';
    s += kDigits[b[i] >> 4];
    s += kDigits[b[i] & 0xf];
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Encoder

// IKE_NOTES' minimal 152-byte request: AES-CBC-256, PRF-SHA256, HMAC-SHA256-128, X25519.
TEST(IkeEncode, ReferenceRequestByteForByte) {
  ProbeRequest r;
  r.spi_i = kSpi;
  r.proposals = {Proposal{.groups = {kGroupX25519}}};
  r.ke_group = kGroupX25519;
  r.ke_data = seq(0x10, 32);
  r.nonce = seq(0x40, 32);

  const Bytes expected =
      hex("a1a2a3a4 a5a6a7a8 | 00000000 00000000 | 21202208 | 00000000 | 00000098"
          // SA (next KE), one proposal: last, length 44, #1, IKE, SPI size 0, 4 transforms
          "22000030 | 0000002c 01010004"
          "0300000c 0100000c 800e0100"  // ENCR AES-CBC, key length 256
          "03000008 02000005"           // PRF HMAC-SHA2-256
          "03000008 0300000c"           // INTEG HMAC-SHA2-256-128
          "00000008 0400001f"           // DH 31 (last)
          // KE (next Nonce): group 31, reserved, 32 bytes
          "28000028 001f0000"
          "10111213 14151617 18191a1b 1c1d1e1f 20212223 24252627 28292a2b 2c2d2e2f"
          // Nonce (last), 32 bytes
          "00000024"
          "40414243 44454647 48494a4b 4c4d4e4f 50515253 54555657 58595a5b 5c5d5e5f");
  ASSERT_EQ(expected.size(), 152u);
  const Bytes got = encode_request(r);
  EXPECT_EQ(got, expected) << "got:\n" << to_hex(got) << "\nexpected:\n" << to_hex(expected);
}

// Two proposals (the AEAD one without INTEG), ECP256 KE, minimum nonce, NAT detection and
// REDIRECT_SUPPORTED, port 4500 with the non-ESP marker.
TEST(IkeEncode, TwoProposalsNatDetectionRedirectWithMarker) {
  ProbeRequest r;
  r.spi_i = kSpi;
  r.proposals = {Proposal{},  // AES-CBC-256, SHA256, SHA256-128, {31, 19, 14}
                 Proposal{.encr = kEncrAesGcm16, .encr_key_bits = 256, .integ = 0}};
  r.ke_group = kGroupEcp256;
  r.ke_data = seq(0x60, 64);
  r.nonce = seq(0xc0, 16);
  r.nat_detection = true;
  r.nat_source_hash = arr<20>(seq(0x01, 20));
  r.nat_destination_hash = arr<20>(seq(0x21, 20));
  r.redirect_supported = true;
  r.non_esp_marker = true;

  const Bytes expected =
      hex("00000000"  // non-ESP marker, not counted in the IKE length
          "a1a2a3a4 a5a6a7a8 | 00000000 00000000 | 21202208 | 00000000 | 0000012c"
          // SA (next KE), length 116
          "22000074"
          // proposal 1: more, length 60, #1, IKE, SPI size 0, 6 transforms
          "0200003c 01010006"
          "0300000c 0100000c 800e0100"  // ENCR AES-CBC 256
          "03000008 02000005"           // PRF HMAC-SHA2-256
          "03000008 0300000c"           // INTEG HMAC-SHA2-256-128
          "03000008 0400001f"           // DH 31
          "03000008 04000013"           // DH 19
          "00000008 0400000e"           // DH 14 (last)
          // proposal 2: last, length 52, #2, IKE, SPI size 0, 5 transforms
          "00000034 02010005"
          "0300000c 01000014 800e0100"  // ENCR AES-GCM-16 256
          "03000008 02000005"           // PRF HMAC-SHA2-256
          "03000008 0400001f"           // DH 31
          "03000008 04000013"           // DH 19
          "00000008 0400000e"           // DH 14 (last)
          // KE (next Nonce), group 19, 64 bytes
          "28000048 00130000"
          "60616263 64656667 68696a6b 6c6d6e6f 70717273 74757677 78797a7b 7c7d7e7f"
          "80818283 84858687 88898a8b 8c8d8e8f 90919293 94959697 98999a9b 9c9d9e9f"
          // Nonce (next Notify), 16 bytes
          "29000014 c0c1c2c3 c4c5c6c7 c8c9cacb cccdcecf"
          // Notify NAT_DETECTION_SOURCE_IP (next Notify)
          "2900001c 00004004 01020304 05060708 090a0b0c 0d0e0f10 11121314"
          // Notify NAT_DETECTION_DESTINATION_IP (next Notify)
          "2900001c 00004005 21222324 25262728 292a2b2c 2d2e2f30 31323334"
          // Notify REDIRECT_SUPPORTED (last), no data
          "00000008 00004016");
  ASSERT_EQ(expected.size(), 4u + 300u);
  const Bytes got = encode_request(r);
  EXPECT_EQ(got, expected) << "got:\n" << to_hex(got) << "\nexpected:\n" << to_hex(expected);
}

// encr_key_bits 0: no key length attribute; REDIRECT_SUPPORTED alone follows the Nonce.
TEST(IkeEncode, NoKeyLengthAttributeAndRedirectSupportedOnly) {
  ProbeRequest r;
  r.spi_i = kSpi;
  r.proposals = {Proposal{.encr = 3,
                          .encr_key_bits = 0,
                          .prf = kPrfHmacSha1,
                          .integ = kIntegHmacSha1_96,
                          .groups = {kGroupModp1024}}};
  r.ke_group = kGroupModp1024;
  r.ke_data = Bytes(128, 0x77);
  r.nonce = seq(0xc0, 16);
  r.redirect_supported = true;

  Bytes expected =
      hex("a1a2a3a4 a5a6a7a8 | 00000000 00000000 | 21202208 | 00000000 | 000000ec"
          "2200002c | 00000028 01010004"
          "03000008 01000003"  // ENCR 3DES, no attribute
          "03000008 02000002"  // PRF HMAC-SHA1
          "03000008 03000002"  // INTEG HMAC-SHA1-96
          "00000008 04000002"  // DH 2 (last)
          "28000088 00020000");
  expected.insert(expected.end(), 128, 0x77);
  const Bytes tail =
      hex("29000014 c0c1c2c3 c4c5c6c7 c8c9cacb cccdcecf"
          "00000008 00004016");
  expected.insert(expected.end(), tail.begin(), tail.end());
  ASSERT_EQ(expected.size(), 236u);
  EXPECT_EQ(encode_request(r), expected);
}

TEST(IkeEncode, KeLengths) {
  EXPECT_EQ(ke_length(kGroupModp1024), 128u);
  EXPECT_EQ(ke_length(kGroupModp2048), 256u);
  EXPECT_EQ(ke_length(kGroupEcp256), 64u);
  EXPECT_EQ(ke_length(kGroupEcp384), 96u);
  EXPECT_EQ(ke_length(kGroupX25519), 32u);
  EXPECT_EQ(ke_length(0), 0u);
  EXPECT_EQ(ke_length(21), 0u);
  EXPECT_EQ(ke_length(0xffff), 0u);
}

TEST(IkeEncode, EveryOfferedGroupCanCarryTheKe) {
  for (const uint16_t group :
       {kGroupModp1024, kGroupModp2048, kGroupEcp256, kGroupEcp384, kGroupX25519}) {
    ProbeRequest r;
    r.spi_i = kSpi;
    r.proposals = {Proposal{
        .groups = {kGroupModp1024, kGroupModp2048, kGroupEcp256, kGroupEcp384, kGroupX25519}}};
    r.ke_group = group;
    r.ke_data = Bytes(ke_length(group), 0x5a);
    r.nonce = Bytes(256, 0x33);
    const Bytes b = encode_request(r);
    // header 28 + SA (4 + 8 + 12 + 8 + 8 + 5 * 8) + KE (8 + data) + Nonce (4 + 256)
    EXPECT_EQ(b.size(), 28u + 80 + 8 + ke_length(group) + 260) << group;
  }
}

ProbeRequest valid_request() {
  ProbeRequest r;
  r.spi_i = kSpi;
  r.ke_data = Bytes(32, 0x11);
  r.nonce = Bytes(32, 0x22);
  return r;
}

// The message of the std::invalid_argument encode_request throws ("" if it does not throw).
std::string encode_error(const ProbeRequest& r) {
  try {
    encode_request(r);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(IkeEncode, DefaultsWithKeAndNonceAreValid) {
  EXPECT_EQ(encode_error(valid_request()), "");
  EXPECT_EQ(encode_request(valid_request()).size(), 28u + 4 + 60 + 40 + 36);
}

TEST(IkeEncode, RejectsZeroSpi) {
  ProbeRequest r = valid_request();
  r.spi_i = {};
  EXPECT_EQ(encode_error(r), "IKE request: initiator SPI is zero");
  r.spi_i[7] = 1;
  EXPECT_EQ(encode_error(r), "");
}

TEST(IkeEncode, RejectsNoProposals) {
  ProbeRequest r = valid_request();
  r.proposals.clear();
  EXPECT_EQ(encode_error(r), "IKE request: no proposals");
}

TEST(IkeEncode, RejectsProposalWithoutGroups) {
  ProbeRequest r = valid_request();
  r.proposals.push_back(Proposal{.groups = {}});
  EXPECT_EQ(encode_error(r), "IKE request: proposal 2 offers no DH group");
}

TEST(IkeEncode, RejectsKeGroupNotOffered) {
  ProbeRequest r = valid_request();
  r.proposals = {Proposal{.groups = {kGroupEcp256, kGroupModp2048}}};
  EXPECT_EQ(encode_error(r), "IKE request: KE group 31 is not offered in any proposal");
  // Offered in the second proposal only is fine.
  r.proposals.push_back(Proposal{.groups = {kGroupX25519}});
  EXPECT_EQ(encode_error(r), "");
}

TEST(IkeEncode, RejectsKeDataOfWrongSize) {
  ProbeRequest r = valid_request();
  r.ke_data.resize(31);
  EXPECT_EQ(encode_error(r), "IKE request: KE data for group 31 is 31 bytes, expected 32");
  r.ke_data.resize(33);
  EXPECT_EQ(encode_error(r), "IKE request: KE data for group 31 is 33 bytes, expected 32");
  r.ke_group = kGroupEcp256;  // offered by the default proposal
  r.ke_data.resize(32);
  EXPECT_EQ(encode_error(r), "IKE request: KE data for group 19 is 32 bytes, expected 64");
}

TEST(IkeEncode, RejectsNonceOutside16To256) {
  ProbeRequest r = valid_request();
  for (const size_t n : {0u, 15u, 257u, 1000u}) {
    r.nonce = Bytes(n, 1);
    EXPECT_EQ(encode_error(r),
              "IKE request: nonce is " + std::to_string(n) + " bytes, expected 16..256");
  }
  for (const size_t n : {16u, 256u}) {
    r.nonce = Bytes(n, 1);
    EXPECT_EQ(encode_error(r), "");
  }
}

TEST(IkeEncode, RejectsUnsupportedKeGroup) {
  ProbeRequest r = valid_request();
  r.proposals = {Proposal{.groups = {21}}};  // ECP521: offered, but no KE length known
  r.ke_group = 21;
  r.ke_data = Bytes(132, 0);
  EXPECT_EQ(encode_error(r), "IKE request: unsupported KE group 21");
}

TEST(IkeEncode, RejectsMoreProposalsThanTheNumberFieldHolds) {
  ProbeRequest r = valid_request();
  r.proposals.assign(256, Proposal{});
  EXPECT_EQ(encode_error(r), "IKE request: more than 255 proposals");
  r.proposals.resize(255);
  EXPECT_EQ(encode_error(r), "");
}

TEST(IkeEncode, RetransmitIsByteIdentical) {
  EXPECT_EQ(encode_request(valid_request()), encode_request(valid_request()));
}

// ---------------------------------------------------------------------------------------------
// Decoder: hand-built answers

struct Payload {
  uint8_t type;
  Bytes body;  // without the generic payload header
};

struct Header {
  Spi spi_i = kSpi;
  Spi spi_r = kSpiR;
  uint8_t version = 0x20, exchange = 34, flags = 0x20;
  uint32_t message_id = 0;
  bool marker = false;
};

void put16(Bytes& b, size_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void put32(Bytes& b, size_t v) {
  put16(b, v >> 16);
  put16(b, v & 0xffff);
}

// Header + payload chain with correct lengths (tests then break what they test).
Bytes answer(const std::vector<Payload>& payloads, const Header& h = {}) {
  Bytes b;
  if (h.marker) b.insert(b.end(), 4, 0);
  const size_t start = b.size();
  b.insert(b.end(), h.spi_i.begin(), h.spi_i.end());
  b.insert(b.end(), h.spi_r.begin(), h.spi_r.end());
  b.push_back(payloads.empty() ? 0 : payloads[0].type);
  b.push_back(h.version);
  b.push_back(h.exchange);
  b.push_back(h.flags);
  put32(b, h.message_id);
  size_t len = 28;
  for (const auto& p : payloads) len += 4 + p.body.size();
  put32(b, len);
  for (size_t i = 0; i < payloads.size(); ++i) {
    b.push_back(i + 1 < payloads.size() ? payloads[i + 1].type : 0);
    b.push_back(0);
    put16(b, 4 + payloads[i].body.size());
    b.insert(b.end(), payloads[i].body.begin(), payloads[i].body.end());
  }
  EXPECT_EQ(b.size() - start, len);
  return b;
}

Payload notify(uint16_t type, const Bytes& data = {}, uint8_t protocol = 0, const Bytes& spi = {}) {
  Bytes body{protocol, static_cast<uint8_t>(spi.size())};
  put16(body, type);
  body.insert(body.end(), spi.begin(), spi.end());
  body.insert(body.end(), data.begin(), data.end());
  return {41, body};
}

// A responder's SA: one proposal AES-CBC-256, SHA256, SHA256-128, X25519.
Payload sa() {
  return {33, hex("0000002c 01010004 0300000c 0100000c 800e0100 03000008 02000005"
                  "03000008 0300000c 00000008 0400001f")};
}
Payload ke(uint16_t group = kGroupX25519, size_t n = 32) {
  Bytes body;
  put16(body, group);
  put16(body, 0);
  body.insert(body.end(), n, 0x42);
  return {34, body};
}
Payload nonce(size_t n = 32) {
  return {40, Bytes(n, 0x4e)};
}

// A strongSwan-like IKE_SA_INIT response, fully hand-written: SA, KE, Nonce, NAT detection
// notifies and a Vendor ID.
const Bytes kIkeResponse =
    hex("a1a2a3a4 a5a6a7a8 | b1b2b3b4 b5b6b7b8 | 21202220 | 00000000 | 000000e4"
        "22000030 0000002c 01010004 0300000c 0100000c 800e0100 03000008 02000005"
        "03000008 0300000c 00000008 0400001f"
        "28000028 001f0000"
        "c0c1c2c3 c4c5c6c7 c8c9cacb cccdcecf d0d1d2d3 d4d5d6d7 d8d9dadb dcdddedf"
        "29000024"
        "e0e1e2e3 e4e5e6e7 e8e9eaeb ecedeeef f0f1f2f3 f4f5f6f7 f8f9fafb fcfdfeff"
        "2900001c 00004004 01010101 01010101 01010101 01010101 01010101"
        "2b00001c 00004005 02020202 02020202 02020202 02020202 02020202"
        "00000014 882fe56d 6fd20dbc 2251613b 2ebe5beb");

// INVALID_KE_PAYLOAD asking for group 19, responder SPI 0, fully hand-written.
const Bytes kInvalidKeAnswer =
    hex("a1a2a3a4 a5a6a7a8 | 00000000 00000000 | 29202220 | 00000000 | 00000026"
        "0000000a 00000011 0013");

// Real strongSwan 5.9.8 answers (charon in a private network namespace, connection with
// proposals aes256-sha256-modp2048), captured once with probes of SPIi kSpi:
// - to port 500, offering and sending MODP2048: the IKE_SA_INIT response (SA, KE, Nonce,
//   CHILDLESS_IKEV2_SUPPORTED, MULTIPLE_AUTH_SUPPORTED);
// - to port 4500, offering {31, 14} with an X25519 KE: INVALID_KE_PAYLOAD asking for 14.
const Bytes kStrongswanIkeResponse =
    hex("a1a2a3a4 a5a6a7a8 c7eb7624 f8ba68b3 21202220 00000000 00000188 22000030"
        "0000002c 01010004 0300000c 0100000c 800e0100 03000008 0300000c 03000008"
        "02000005 00000008 0400000e 28000108 000e0000 14263b43 c1aa4b9a c7dca781"
        "4d484d99 a82eb7b8 d83f8939 4012916f f5a47150 59d017e4 a58035f2 f888f4a6"
        "abb8a0e1 0ac4771c 0ca520d9 930ac2f9 f3520573 455f94f8 aadac9b1 80bc7b87"
        "292edc81 8b4ea842 4aff52dd 0e440b4b 9c1b6319 faeb1af9 85b78624 c0ad3a6b"
        "c5796496 327e7eed 725d62f1 5aa92d02 f6b4ed3e 50d0d5d6 e7983338 c6119ed7"
        "0b41bfca d692eb0c 74e5a4ac 2a2aec47 9e8a3795 8ad50659 a1e533f7 e302d9a4"
        "b2eb5bc5 8b8797e6 bc42d54f 34f1a293 1f529adb 8295b639 e2fefe11 fc0cf6ce"
        "7ee27550 2f331c55 b4910a91 ac3e8d59 aea5fdce bdc2ead4 0cfb8635 c13a65ea"
        "210f88d9 6cc74e57 74e7b8a1 19d0589f 66817f45 29000024 d1ca782c 707324fe"
        "a18f0c11 c02fb019 4287401f e1bde5d8 b53775d3 ae6602fb 29000008 00004022"
        "00000008 00004014");
const Bytes kStrongswanInvalidKe4500 =
    hex("00000000 a1a2a3a4 a5a6a7a8 00000000 00000000 29202220 00000000 00000026"
        "0000000a 00000011 000e");

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes with_marker(const Bytes& b) {
  Bytes out(4 + b.size(), 0);  // not insert(): GCC 12 -O3 warns falsely (-Warray-bounds)
  std::copy(b.begin(), b.end(), out.begin() + 4);
  return out;
}

// One valid answer of every kind (without marker), with the kind it decodes to.
std::vector<std::pair<Bytes, ResultKind>> valid_answers() {
  const Header notify_only{.spi_r = {}};
  return {
      {kIkeResponse, ResultKind::kIkeResponse},
      {answer({sa(), ke(), nonce()}), ResultKind::kIkeResponse},
      {kInvalidKeAnswer, ResultKind::kInvalidKe},
      {answer({notify(kCookie, seq(0x70, 32))}, notify_only), ResultKind::kCookie},
      {answer({notify(kNoProposalChosen)}, notify_only), ResultKind::kNoProposalChosen},
      {answer({notify(kRedirect, cat(hex("0104c0000201"), seq(0x40, 32)))}, notify_only),
       ResultKind::kRedirect},
      {answer({notify(kInvalidSyntax)}, notify_only), ResultKind::kInvalidSyntax},
      {answer({notify(kInvalidMajorVersion)}, notify_only), ResultKind::kInvalidMajorVersion},
  };
}

ProbeResult decode(const Bytes& b, bool marker = false, const Spi& spi = kSpi) {
  return decode_response(b, spi, marker);
}

void expect_malformed(const Bytes& b, bool marker, std::string_view detail_part) {
  const ProbeResult r = decode(b, marker);
  EXPECT_EQ(r.kind, ResultKind::kMalformed) << to_string(r.kind);
  EXPECT_NE(r.detail.find(detail_part), std::string::npos)
      << "detail \"" << r.detail << "\" lacks \"" << detail_part << "\"";
}

TEST(IkeDecode, IkeResponse) {
  for (const bool marker : {false, true}) {
    SCOPED_TRACE(marker ? "port 4500" : "port 500");
    const ProbeResult r = decode(marker ? with_marker(kIkeResponse) : kIkeResponse, marker);
    EXPECT_EQ(r.kind, ResultKind::kIkeResponse) << r.detail;
    EXPECT_EQ(r.detail, "");
    EXPECT_EQ(r.spi_r, kSpiR);
    EXPECT_FALSE(r.group);
    EXPECT_EQ(r.notifies,
              (std::vector<uint16_t>{kNatDetectionSourceIp, kNatDetectionDestinationIp}));
  }
}

TEST(IkeDecode, InvalidKeWithGroup19) {
  for (const bool marker : {false, true}) {
    SCOPED_TRACE(marker ? "port 4500" : "port 500");
    const ProbeResult r = decode(marker ? with_marker(kInvalidKeAnswer) : kInvalidKeAnswer, marker);
    EXPECT_EQ(r.kind, ResultKind::kInvalidKe) << r.detail;
    EXPECT_EQ(r.group, std::optional<uint16_t>(kGroupEcp256));
    EXPECT_EQ(r.spi_r, Spi{});
    EXPECT_EQ(r.notifies, std::vector<uint16_t>{kInvalidKePayload});
  }
}

TEST(IkeDecode, RealStrongswanAnswers) {
  ProbeResult r = decode(kStrongswanIkeResponse);
  EXPECT_EQ(r.kind, ResultKind::kIkeResponse) << r.detail;
  EXPECT_EQ(r.spi_r, (Spi{0xc7, 0xeb, 0x76, 0x24, 0xf8, 0xba, 0x68, 0xb3}));
  EXPECT_EQ(r.notifies, (std::vector<uint16_t>{16418, 16404}));
  r = decode(kStrongswanInvalidKe4500, true);
  EXPECT_EQ(r.kind, ResultKind::kInvalidKe) << r.detail;
  EXPECT_EQ(r.group, std::optional<uint16_t>(kGroupModp2048));
  EXPECT_EQ(r.spi_r, Spi{});
  expect_malformed(kStrongswanInvalidKe4500, false, "SPIi mismatch");
  for (size_t n = 0; n < kStrongswanIkeResponse.size(); ++n)
    EXPECT_EQ(
        decode(Bytes(kStrongswanIkeResponse.begin(), kStrongswanIkeResponse.begin() + n)).kind,
        ResultKind::kMalformed)
        << n;
}

TEST(IkeDecode, InvalidKeSkipsANotifySpi) {
  const ProbeResult r = decode(answer({notify(kInvalidKePayload, hex("000e"), 1, seq(1, 8))}));
  EXPECT_EQ(r.kind, ResultKind::kInvalidKe) << r.detail;
  EXPECT_EQ(r.group, std::optional<uint16_t>(kGroupModp2048));
}

TEST(IkeDecode, EveryNotifyKindOnBothPorts) {
  const Header notify_only{.spi_r = {}};
  const std::vector<std::pair<uint16_t, ResultKind>> cases = {
      {kCookie, ResultKind::kCookie},
      {kNoProposalChosen, ResultKind::kNoProposalChosen},
      {kRedirect, ResultKind::kRedirect},
      {kInvalidSyntax, ResultKind::kInvalidSyntax},
      {kInvalidMajorVersion, ResultKind::kInvalidMajorVersion},
  };
  for (const auto& [type, kind] : cases) {
    for (const bool marker : {false, true}) {
      SCOPED_TRACE(std::string(to_string(kind)) + (marker ? " port 4500" : " port 500"));
      Header h = notify_only;
      h.marker = marker;
      const Bytes data = type == kCookie ? seq(0x70, 32) : Bytes{};
      const ProbeResult r = decode(answer({notify(type, data)}, h), marker);
      EXPECT_EQ(r.kind, kind) << r.detail;
      EXPECT_EQ(r.detail, "");
      EXPECT_FALSE(r.group);
      EXPECT_EQ(r.notifies, std::vector<uint16_t>{type});
    }
  }
}

TEST(IkeDecode, ResponderSpiIsReportedForNotifies) {
  const ProbeResult r = decode(answer({notify(kNoProposalChosen)}));
  EXPECT_EQ(r.kind, ResultKind::kNoProposalChosen);
  EXPECT_EQ(r.spi_r, kSpiR);
}

TEST(IkeDecode, ErrorNotifiesTakePrecedence) {
  struct Case {
    std::vector<Payload> payloads;
    ResultKind kind;
  };
  const std::vector<Case> cases = {
      {{notify(kCookie, seq(0, 16)), notify(kInvalidKePayload, hex("0013"))},
       ResultKind::kInvalidKe},
      {{notify(kInvalidSyntax), notify(kNoProposalChosen)}, ResultKind::kNoProposalChosen},
      {{notify(kInvalidMajorVersion), notify(kInvalidSyntax)}, ResultKind::kInvalidSyntax},
      {{notify(kRedirect, hex("0104c0000201")), notify(kInvalidMajorVersion)},
       ResultKind::kInvalidMajorVersion},
      {{notify(kRedirect, hex("0104c0000201")), notify(kCookie, seq(0, 16))}, ResultKind::kCookie},
      {{sa(), ke(), nonce(), notify(kRedirect, hex("0104c0000201"))}, ResultKind::kRedirect},
      {{sa(), ke(), nonce(), notify(kNoProposalChosen)}, ResultKind::kNoProposalChosen},
      {{sa(), ke(), nonce(), notify(kCookie, seq(0, 16))}, ResultKind::kCookie},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const ProbeResult r = decode(answer(cases[i].payloads));
    EXPECT_EQ(r.kind, cases[i].kind)
        << "case " << i << ": " << to_string(r.kind) << " " << r.detail;
  }
}

TEST(IkeDecode, UnknownErrorNotifyIsMalformedAndNamed) {
  expect_malformed(answer({notify(24)}), false, "AUTHENTICATION_FAILED");
  expect_malformed(answer({notify(0)}), false, "error notify 0");
  expect_malformed(answer({notify(16383)}), false, "error notify 16383");
  expect_malformed(answer({notify(kCookie, seq(0, 16)), notify(43)}), false, "TEMPORARY_FAILURE");
  // Status notifies we do not know are ignored.
  EXPECT_EQ(decode(answer({sa(), ke(), nonce(), notify(16404), notify(16431, hex("0002"))})).kind,
            ResultKind::kIkeResponse);
}

TEST(IkeDecode, IgnoresOtherPayloadsAndTheVersionFlag) {
  const Payload vendor_id{43, seq(0, 16)}, certreq{38, hex("04")};
  EXPECT_EQ(decode(answer({vendor_id, sa(), certreq, ke(), nonce()})).kind,
            ResultKind::kIkeResponse);
  EXPECT_EQ(decode(answer({sa(), ke(), nonce()}, Header{.flags = 0x30})).kind,
            ResultKind::kIkeResponse);
  // RFC 7296: the minor version of a received message is ignored.
  EXPECT_EQ(decode(answer({sa(), ke(), nonce()}, Header{.version = 0x21})).kind,
            ResultKind::kIkeResponse);
}

TEST(IkeDecode, SixtyFourPayloadsAreAcceptedSixtyFiveAreNot) {
  std::vector<Payload> p = {sa(), ke(), nonce()};
  while (p.size() < 64) p.push_back({43, seq(0, 4)});
  EXPECT_EQ(decode(answer(p)).kind, ResultKind::kIkeResponse);
  p.push_back({43, seq(0, 4)});
  expect_malformed(answer(p), false, "more than 64 payloads");
}

TEST(IkeDecode, ToString) {
  EXPECT_EQ(to_string(ResultKind::kIkeResponse), "ike_response");
  EXPECT_EQ(to_string(ResultKind::kInvalidKe), "invalid_ke");
  EXPECT_EQ(to_string(ResultKind::kCookie), "cookie");
  EXPECT_EQ(to_string(ResultKind::kNoProposalChosen), "no_proposal_chosen");
  EXPECT_EQ(to_string(ResultKind::kRedirect), "redirect");
  EXPECT_EQ(to_string(ResultKind::kInvalidSyntax), "invalid_syntax");
  EXPECT_EQ(to_string(ResultKind::kInvalidMajorVersion), "invalid_major_version");
  EXPECT_EQ(to_string(ResultKind::kMalformed), "malformed");
}

// ---------------------------------------------------------------------------------------------
// Decoder: malformed input

TEST(IkeDecodeMalformed, Empty) {
  expect_malformed({}, false, "truncated header (0 bytes)");
  expect_malformed({}, true, "truncated non-ESP marker");
}

TEST(IkeDecodeMalformed, EveryPrefixOfEveryValidAnswer) {
  for (const auto& [full, kind] : valid_answers()) {
    for (const bool marker : {false, true}) {
      const Bytes b = marker ? with_marker(full) : full;
      ASSERT_EQ(decode(b, marker).kind, kind) << to_string(kind);
      for (size_t n = 0; n < b.size(); ++n) {
        const ProbeResult r = decode(Bytes(b.begin(), b.begin() + n), marker);
        EXPECT_EQ(r.kind, ResultKind::kMalformed)
            << to_string(kind) << (marker ? " 4500" : " 500") << " prefix " << n;
        EXPECT_FALSE(r.detail.empty());
      }
    }
  }
}

TEST(IkeDecodeMalformed, TrailingGarbage) {
  Bytes b = kIkeResponse;
  b.push_back(0);
  expect_malformed(b, false, "length field 228 != datagram 229");
  b[27] = 229;  // the header length admits the extra byte, the payload chain does not
  expect_malformed(b, false, "1 trailing bytes after the last payload");
}

TEST(IkeDecodeMalformed, Oversized) {
  Bytes b = kIkeResponse;
  b.resize(70000, 0xee);
  expect_malformed(b, false, "length field 228 != datagram 70000");
  b[25] = 0x01;  // 70000 = 0x00011170
  b[26] = 0x11;
  b[27] = 0x70;
  expect_malformed(b, false, "69772 trailing bytes after the last payload");
}

TEST(IkeDecodeMalformed, WrongSpiI) {
  Spi other = kSpi;
  other[7] ^= 1;
  const ProbeResult r = decode(kIkeResponse, false, other);
  EXPECT_EQ(r.kind, ResultKind::kMalformed);
  EXPECT_EQ(r.detail, "SPIi mismatch");
  EXPECT_EQ(decode(with_marker(kIkeResponse), true, other).detail, "SPIi mismatch");
}

TEST(IkeDecodeMalformed, WrongFlags) {
  const std::vector<Payload> p = {sa(), ke(), nonce()};
  expect_malformed(answer(p, Header{.flags = 0x28}), false, "I flag set (flags 0x28)");
  expect_malformed(answer(p, Header{.flags = 0x00}), false, "R flag clear (flags 0x00)");
  expect_malformed(answer(p, Header{.flags = 0x08}), false, "R flag clear (flags 0x08)");
}

TEST(IkeDecodeMalformed, OurOwnRequestReflected) {
  expect_malformed(encode_request(valid_request()), false, "R flag clear");
}

TEST(IkeDecodeMalformed, WrongExchangeVersionMessageId) {
  const std::vector<Payload> p = {sa(), ke(), nonce()};
  expect_malformed(answer(p, Header{.exchange = 35}), false, "exchange 35 is not IKE_SA_INIT");
  expect_malformed(answer(p, Header{.version = 0x10}), false, "version 0x10 is not 2.x");
  expect_malformed(answer(p, Header{.version = 0x30}), false, "version 0x30 is not 2.x");
  expect_malformed(answer(p, Header{.message_id = 1}), false, "message ID 1 != 0");
}

TEST(IkeDecodeMalformed, LyingHeaderLength) {
  Bytes b = kIkeResponse;
  b[27] = 0xe5;
  expect_malformed(b, false, "length field 229 != datagram 228");
  b[27] = 0xe3;
  expect_malformed(b, false, "length field 227 != datagram 228");
  b[24] = 0x80;
  b[27] = 0xe4;
  expect_malformed(b, false, "length field 2147483876 != datagram 228");
}

TEST(IkeDecodeMalformed, PayloadLengthBelowFour) {
  for (const uint8_t len : {0, 1, 3}) {
    Bytes b = kIkeResponse;
    b[28 + 2] = 0;
    b[28 + 3] = len;  // the SA payload
    expect_malformed(b, false, "payload 1 (type 33) length " + std::to_string(len) + " < 4");
  }
  Bytes b = kIkeResponse;
  b[28 + 48 + 3] = 2;  // the KE payload
  expect_malformed(b, false, "payload 2 (type 34) length 2 < 4");
}

TEST(IkeDecodeMalformed, PayloadOverrunsTheDatagram) {
  Bytes b = kIkeResponse;
  b[28 + 2] = 0x01;  // SA length 0x0130 > 200 remaining
  expect_malformed(b, false, "payload 1 (type 33) overruns the datagram");
  b = kIkeResponse;
  b[228 - 20 + 3] = 0x15;  // the last payload (Vendor ID) one byte too long
  expect_malformed(b, false, "payload 6 (type 43) overruns the datagram");
  b = kIkeResponse;
  b[28 + 48 + 3] = 0x29;  // KE one byte too long: the Nonce header shifts
  const ProbeResult r = decode(b);
  EXPECT_EQ(r.kind, ResultKind::kMalformed);
}

TEST(IkeDecodeMalformed, ChainEndsEarlyOrRunsPastTheEnd) {
  Bytes b = kIkeResponse;
  b[28 + 48 + 40] = 0;  // Nonce claims to be last
  expect_malformed(b, false, "76 trailing bytes after the last payload");
  b = kIkeResponse;
  b[228 - 20] = 43;  // Vendor ID claims another payload follows
  expect_malformed(b, false, "payload 7 (type 43) header is truncated");
  b = kIkeResponse;
  b[16] = 0;  // header says no payloads
  expect_malformed(b, false, "200 trailing bytes after the last payload");
}

TEST(IkeDecodeMalformed, NotifyWithShortBody) {
  // Notify of 6 bytes: the type does not fit.
  expect_malformed(answer({{41, hex("0000")}}), false, "payload 1 (type 41): notify of 6 bytes");
  expect_malformed(answer({{41, hex("000000")}}), false, "notify of 7 bytes");
  // SPI size 8 with 4 bytes left.
  expect_malformed(answer({{41, hex("01080011 00000000")}}), false,
                   "notify SPI overruns the payload");
}

TEST(IkeDecodeMalformed, InvalidKeDataNotTwoBytes) {
  expect_malformed(answer({notify(kInvalidKePayload, hex("000013"))}), false,
                   "INVALID_KE_PAYLOAD data of 3 bytes, expected 2");
  expect_malformed(answer({notify(kInvalidKePayload, hex("13"))}), false,
                   "INVALID_KE_PAYLOAD data of 1 bytes, expected 2");
  expect_malformed(answer({notify(kInvalidKePayload)}), false,
                   "INVALID_KE_PAYLOAD data of 0 bytes, expected 2");
}

TEST(IkeDecodeMalformed, MissingOrBrokenMarker) {
  expect_malformed(kIkeResponse, true, "missing non-ESP marker");
  Bytes b = with_marker(kIkeResponse);
  b[3] = 1;
  expect_malformed(b, true, "missing non-ESP marker");
  expect_malformed(hex("000000"), true, "truncated non-ESP marker");
  expect_malformed(hex("00000000"), true, "truncated header (0 bytes)");
  // A marker where none is expected: the SPIi does not match.
  expect_malformed(with_marker(kIkeResponse), false, "SPIi mismatch");
}

TEST(IkeDecodeMalformed, IncompleteResponse) {
  expect_malformed(answer({}), false, "no SA payload");
  expect_malformed(answer({ke(), nonce()}), false, "no SA payload");
  expect_malformed(answer({sa(), nonce()}), false, "no KE payload");
  expect_malformed(answer({sa(), ke()}), false, "no Nonce payload");
  expect_malformed(answer({sa(), ke(), nonce()}, Header{.spi_r = {}}), false,
                   "responder SPI is zero");
  expect_malformed(answer({notify(kNatDetectionSourceIp, seq(0, 20))}), false, "no SA payload");
}

TEST(IkeDecodeMalformed, BadResponsePayloads) {
  expect_malformed(answer({sa(), ke(), ke(), nonce()}), false, "duplicate KE payload");
  expect_malformed(answer({sa(), sa(), ke(), nonce()}), false, "duplicate SA payload");
  expect_malformed(answer({sa(), ke(), nonce(), nonce()}), false, "duplicate Nonce payload");
  expect_malformed(answer({{33, hex("00000000")}, ke(), nonce()}), false, "SA without a proposal");
  expect_malformed(answer({sa(), ke(31, 0), nonce()}), false, "KE without a public value");
  expect_malformed(answer({sa(), ke(), nonce(15)}), false, "nonce of 15 bytes");
  expect_malformed(answer({sa(), ke(), nonce(257)}), false, "nonce of 257 bytes");
  EXPECT_EQ(decode(answer({sa(), ke(), nonce(16)})).kind, ResultKind::kIkeResponse);
  EXPECT_EQ(decode(answer({sa(), ke(), nonce(256)})).kind, ResultKind::kIkeResponse);
}

// Flipping any single byte of a valid answer never crashes and never yields a result that
// contradicts itself.
TEST(IkeDecodeMalformed, EverySingleByteCorruption) {
  for (const auto& [full, kind] : valid_answers()) {
    for (const bool marker : {false, true}) {
      const Bytes b = marker ? with_marker(full) : full;
      for (size_t i = 0; i < b.size(); ++i) {
        for (const uint8_t x : {0x01, 0x80, 0xff}) {
          Bytes c = b;
          c[i] ^= x;
          const ProbeResult r = decode(c, marker);
          EXPECT_TRUE(r.kind != ResultKind::kMalformed || !r.detail.empty());
          EXPECT_TRUE(r.kind != ResultKind::kInvalidKe || r.group.has_value());
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Seed corpus of healthcheck/fuzz/ike_decode_fuzz.cc: one file per result kind and port. Named
// <result kind>_<port>; the fuzzer's fixed SPIi is kSpi. Regenerate with
//   IKELB_WRITE_IKE_CORPUS=1 ./ike_test --gtest_filter=IkeCorpus.*

std::vector<std::pair<std::string, Bytes>> seeds() {
  std::vector<std::pair<std::string, Bytes>> out;
  const std::vector<std::string> names = {"ike_response_a", "ike_response_b",       "invalid_ke",
                                          "cookie",         "no_proposal_chosen",   "redirect",
                                          "invalid_syntax", "invalid_major_version"};
  const auto answers = valid_answers();
  for (size_t i = 0; i < answers.size(); ++i) {
    out.emplace_back(names[i] + "_500", answers[i].first);
    out.emplace_back(names[i] + "_4500", with_marker(answers[i].first));
  }
  ProbeRequest req = valid_request();
  req.nat_detection = req.redirect_supported = true;
  out.emplace_back("ike_response_strongswan_500", kStrongswanIkeResponse);
  out.emplace_back("invalid_ke_strongswan_4500", kStrongswanInvalidKe4500);
  out.emplace_back("malformed_request_500", encode_request(req));
  out.emplace_back("malformed_unknown_error_500", answer({notify(24)}));
  return out;
}

TEST(IkeCorpus, SeedsAreCurrentAndDecodeAsNamed) {
  const std::filesystem::path dir = IKELB_IKE_CORPUS;
  const auto all = seeds();
  if (std::getenv("IKELB_WRITE_IKE_CORPUS")) {
    std::filesystem::create_directories(dir);
    for (const auto& entry : std::filesystem::directory_iterator(dir))
      std::filesystem::remove(entry.path());
    for (const auto& [name, bytes] : all) {
      std::ofstream(dir / name, std::ios::binary)
          .write(reinterpret_cast<const char*>(bytes.data()),
                 static_cast<std::streamsize>(bytes.size()));
    }
  }
  std::set<std::string> expected_files;
  for (const auto& [name, bytes] : all) {
    expected_files.insert(name);
    std::ifstream in(dir / name, std::ios::binary);
    ASSERT_TRUE(in) << (dir / name) << " missing: regenerate the corpus";
    const Bytes file{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    EXPECT_EQ(file, bytes) << name << " is stale: regenerate the corpus";
    const bool marker = name.ends_with("_4500");
    const ProbeResult r = decode(file, marker);
    EXPECT_TRUE(name.starts_with(to_string(r.kind))) << name << ": " << to_string(r.kind);
  }
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    EXPECT_TRUE(expected_files.count(entry.path().filename().string()))
        << entry.path() << " is not a generated seed";
}

}  // namespace
}  // namespace ikelb::ike
