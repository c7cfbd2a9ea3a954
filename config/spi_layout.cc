#include "spi_layout.h"

#include <cstdio>

namespace ikelb {

std::string check_layout(const SpiLabelLayout& l) {
  if (l.id_bits < 1 || l.id_bits > 16)
    return "id_bits must be between 1 and 16, got " + std::to_string(l.id_bits);
  // The id must fit in the SPI: "the IKE id bits (ike_id_shift S + id_bits B) run past bit 63 ...".
  auto past = [&](const char* kind, const char* shift_key, uint32_t shift, uint32_t bits) {
    return std::string("the ") + kind + " id bits (" + shift_key + " " + std::to_string(shift) +
           " + id_bits " + std::to_string(l.id_bits) + ") run past bit " +
           std::to_string(bits - 1) + " of the " + kind + " SPI; " + shift_key +
           " can be at most " + std::to_string(bits - l.id_bits);
  };
  if (l.ike_id_shift + l.id_bits > 64) return past("IKE", "ike_id_shift", l.ike_id_shift, 64);
  if (l.esp_id_shift + l.id_bits > 32) return past("ESP", "esp_id_shift", l.esp_id_shift, 32);
  if (l.esp_id_shift < kMinEspRandomBits)
    return "esp_id_shift " + std::to_string(l.esp_id_shift) + " leaves " +
           std::to_string(l.esp_id_shift) + " random bits in each ESP SPI, at least " +
           std::to_string(kMinEspRandomBits) +
           " are needed: every inbound ESP SPI of a gateway comes from its range of "
           "2^esp_id_shift values";
  const uint32_t top = l.esp_id_shift + l.id_bits;  // bits below this: id and random part
  const uint32_t low = top >= 32 ? ~0u : (1u << top) - 1;
  if (l.esp_prefix & low)
    return "esp_prefix " + hex32(l.esp_prefix) + " has bits below bit " + std::to_string(top) +
           ", where the gateway id and the random part of the ESP SPI lie; it may only set bits " +
           std::to_string(top) + " to 31";
  return "";
}

StrongswanSpi strongswan_spi(const SpiLabelLayout& l, uint32_t id) {
  StrongswanSpi s;
  s.spi_mask = l.ike_mask();
  s.spi_label = (uint64_t{id} << l.ike_id_shift) & s.spi_mask;
  s.spi_min = l.esp_prefix | ((id << l.esp_id_shift) & l.esp_mask());
  s.spi_max = s.spi_min | ((1u << l.esp_id_shift) - 1);
  return s;
}

std::string hex64(uint64_t v) {
  char buf[19];
  std::snprintf(buf, sizeof(buf), "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string hex32(uint32_t v) {
  char buf[11];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

std::string strongswan_conf(const StrongswanSpi& s) {
  return "charon {\n"
         "  spi_mask = " +
         hex64(s.spi_mask) +
         "\n"
         "  spi_label = " +
         hex64(s.spi_label) +
         "\n"
         "  spi_min = " +
         hex32(s.spi_min) +
         "\n"
         "  spi_max = " +
         hex32(s.spi_max) +
         "\n"
         "}\n";
}

ikelb_spi_routing spi_routing_entry(const std::optional<SpiRoutingConfig>& c) {
  ikelb_spi_routing r{};
  if (!c) return r;
  if (c->labels) {
    r.ike_mask = c->labels->ike_mask();
    r.ike_shift = static_cast<uint8_t>(c->labels->ike_id_shift);
    r.esp_mask = c->labels->esp_mask();
    r.esp_shift = static_cast<uint8_t>(c->labels->esp_id_shift);
    r.flags |= IKELB_SPI_LABELS;
  }
  if (c->learn) {
    r.ike_idle_ns = uint64_t{c->learn->ike_idle_s} * 1'000'000'000ull;
    r.esp_idle_ns = uint64_t{c->learn->esp_idle_s} * 1'000'000'000ull;
    r.flags |= IKELB_SPI_LEARN;
  }
  return r;
}

}  // namespace ikelb
