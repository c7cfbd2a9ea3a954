// SPI routing layouts (issue 15): where a gateway's id sits in the IKE and ESP SPIs it allocates,
// the strongswan.conf settings that make strongSwan put it there, and the data path's form of
// the layout. Pure functions of values; the config validator and `ikelbctl spi-config` use them.
//
// strongSwan (>= 5.8) allocates every IKE SPI as (random & ~spi_mask) | spi_label, both read as
// 64-bit numbers applied in network byte order, so bit 63 of spi_mask is the first bit on the
// wire. It draws every inbound ESP SPI from [spi_min, spi_max]. The data path reads the id back
// as (SPI & mask) >> shift, the SPI as a big-endian number (ebpf/spi.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ikelb_abi.h"

namespace ikelb {

struct SpiLabelLayout {
  uint32_t id_bits = 8;              // 1..16
  uint32_t ike_id_shift = 56;        // default 64 - id_bits: the first bytes on the wire
  uint32_t esp_id_shift = 20;        // default 28 - id_bits; the ESP SPI's random bits lie below
  uint32_t esp_prefix = 0xc0000000;  // fixed bits above the id (kernel-netlink's default range)
  uint64_t ike_mask() const { return ((uint64_t{1} << id_bits) - 1) << ike_id_shift; }
  uint32_t esp_mask() const { return ((uint32_t{1} << id_bits) - 1) << esp_id_shift; }
  uint32_t max_id() const { return (uint32_t{1} << id_bits) - 1; }
  friend bool operator==(const SpiLabelLayout&, const SpiLabelLayout&) = default;
};

// The smallest number of random bits a layout may leave in an ESP SPI: each gateway draws its
// inbound SPIs from 2^esp_id_shift values.
constexpr uint32_t kMinEspRandomBits = 16;

// Idle times of learned SPI owners: longer than the IKE and CHILD SA rekey intervals
// (strongSwan's defaults: 4 h and 1 h; the defaults here allow for rand_time and margin).
struct SpiLearn {
  uint32_t ike_idle_s = 32400;
  uint32_t esp_idle_s = 7200;
  friend bool operator==(const SpiLearn&, const SpiLearn&) = default;
};

struct SpiRoutingConfig {
  std::optional<SpiLabelLayout> labels;
  std::optional<SpiLearn> learn;
  friend bool operator==(const SpiRoutingConfig&, const SpiRoutingConfig&) = default;
};

// Why a layout cannot work ("" when it can): the ids run past the SPI, too few random ESP bits,
// or esp_prefix has bits in the id or the random part.
std::string check_layout(const SpiLabelLayout& layout);

// A gateway's strongswan.conf settings for id `id` (1..max_id) of a valid layout.
struct StrongswanSpi {
  uint64_t spi_mask = 0, spi_label = 0;
  uint32_t spi_min = 0, spi_max = 0;
  friend bool operator==(const StrongswanSpi&, const StrongswanSpi&) = default;
};
StrongswanSpi strongswan_spi(const SpiLabelLayout& layout, uint32_t id);

// "0x00ff" style: lowercase, zero-padded to the value's full width (16 or 8 digits).
std::string hex64(uint64_t v);
std::string hex32(uint32_t v);

// The charon section to paste into strongswan.conf (lines end with '\n').
std::string strongswan_conf(const StrongswanSpi& s);

// The data path's spi_routing entry of a virtual server (all zero: SPI routing off).
ikelb_spi_routing spi_routing_entry(const std::optional<SpiRoutingConfig>& config);

}  // namespace ikelb
