// libFuzzer target: decode_response must never crash, read out of bounds or hit undefined
// behaviour, whatever the datagram, and its results must be self-consistent.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "ike.h"

namespace {

using ikelb::ike::ProbeResult;
using ikelb::ike::ResultKind;

// The SPIi of the seed corpus (healthcheck/fuzz/corpus, written by tests/unit/ike_test.cc).
constexpr std::array<uint8_t, 8> kFixedSpi{0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8};

void check(const ProbeResult& r) {
  const bool ok = [&] {
    switch (r.kind) {
      case ResultKind::kMalformed:
        return !r.detail.empty();
      case ResultKind::kInvalidKe:
        return r.group.has_value() && r.detail.empty();
      case ResultKind::kIkeResponse:
        return r.detail.empty() && !r.group && r.spi_r != std::array<uint8_t, 8>{};
      default:
        return r.detail.empty() && !r.group && !r.notifies.empty();
    }
  }();
  if (!ok) std::abort();
}

void decode(std::span<const uint8_t> input, const std::array<uint8_t, 8>& spi, bool marker) {
  check(ikelb::ike::decode_response(input, spi, marker));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  decode(input, kFixedSpi, false);
  decode(input, kFixedSpi, true);
  // SPIi taken from the input itself, so mutations get past the SPI check on either port.
  std::array<uint8_t, 8> spi{};
  if (size >= 8) {
    std::copy_n(data, 8, spi.begin());
    decode(input, spi, false);
  }
  if (size >= 12) {
    std::copy_n(data + 4, 8, spi.begin());
    decode(input, spi, true);
  }
  return 0;
}
