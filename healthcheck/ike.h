// IKEv2 IKE_SA_INIT probe encoder and response decoder (RFC 7296), pure functions.
// See ../shared/IKE_NOTES.md for the wire facts. The decoder treats every byte as hostile: each
// length is checked before use, and anything inconsistent is `malformed`, never a crash.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ikelb::ike {

using Bytes = std::vector<uint8_t>;

// Transform IDs used by probes (IANA "IKEv2 Parameters").
inline constexpr uint16_t kEncrAesCbc = 12, kEncrAesGcm16 = 20;
inline constexpr uint16_t kPrfHmacSha256 = 5, kPrfHmacSha1 = 2;
inline constexpr uint16_t kIntegHmacSha256_128 = 12, kIntegHmacSha1_96 = 2;
inline constexpr uint16_t kGroupModp2048 = 14, kGroupEcp256 = 19, kGroupEcp384 = 20,
                          kGroupX25519 = 31, kGroupModp1024 = 2;

// Notify message types.
inline constexpr uint16_t kInvalidMajorVersion = 5, kInvalidSyntax = 7, kNoProposalChosen = 14,
                          kInvalidKePayload = 17, kNatDetectionSourceIp = 16388,
                          kNatDetectionDestinationIp = 16389, kCookie = 16390,
                          kRedirectSupported = 16406, kRedirect = 16407;

// Length of a KE public value for a group (0 if the group is not supported by the encoder).
size_t ke_length(uint16_t group);

struct Proposal {
  uint16_t encr = kEncrAesCbc;
  uint16_t encr_key_bits = 256;  // 0: no key length attribute
  uint16_t prf = kPrfHmacSha256;
  uint16_t integ = kIntegHmacSha256_128;  // 0: none (AEAD)
  std::vector<uint16_t> groups{kGroupX25519, kGroupEcp256, kGroupModp2048};
};

struct ProbeRequest {
  std::array<uint8_t, 8> spi_i{};  // never all zero
  std::vector<Proposal> proposals{Proposal{}};
  uint16_t ke_group = kGroupX25519;  // must be offered in some proposal
  Bytes ke_data;                     // exactly ke_length(ke_group) bytes
  Bytes nonce;                       // 16..256 bytes
  bool nat_detection = false;        // add NAT_DETECTION_SOURCE/DESTINATION_IP notifies
  std::array<uint8_t, 20> nat_source_hash{}, nat_destination_hash{};  // SHA-1 values to send
  bool redirect_supported = false;                                    // add REDIRECT_SUPPORTED
  bool non_esp_marker = false;  // port 4500: prefix 4 zero bytes
};

// The IKE_SA_INIT request datagram (UDP payload). Throws std::invalid_argument on a request
// that violates the rules above (a bug in the caller, not bad input).
Bytes encode_request(const ProbeRequest& request);

enum class ResultKind {
  kIkeResponse,          // SA + KE + Nonce with a responder SPI: alive, half-open SA created
  kInvalidKe,            // INVALID_KE_PAYLOAD: alive, no state kept; `group` = wanted group
  kCookie,               // COOKIE: alive, back off
  kNoProposalChosen,     // alive but refuses us
  kRedirect,             // REDIRECT: wants to shed clients
  kInvalidSyntax,        // our probe is wrong
  kInvalidMajorVersion,  // not IKEv2
  kMalformed,            // anything inconsistent, or not an answer to this probe
};

std::string_view to_string(ResultKind kind);  // "ike_response", "invalid_ke", ...

struct ProbeResult {
  ResultKind kind = ResultKind::kMalformed;
  std::string detail;              // for malformed: what was wrong
  std::array<uint8_t, 8> spi_r{};  // responder SPI (zero for notify-only answers)
  std::optional<uint16_t> group;   // INVALID_KE_PAYLOAD's wanted group
  std::vector<uint16_t> notifies;  // every notify type seen, in order
};

// Decodes a response datagram (UDP payload) to a probe with initiator SPI `spi_i`.
// `non_esp_marker`: the probe went to port 4500, so the answer starts with 4 zero bytes.
ProbeResult decode_response(std::span<const uint8_t> datagram, const std::array<uint8_t, 8>& spi_i,
                            bool non_esp_marker);

}  // namespace ikelb::ike
