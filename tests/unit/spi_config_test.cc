// SPI routing configuration (issue 15): the label layout's arithmetic (config/spi_layout.h), the
// strongswan.conf settings it produces, and the validator's exact errors for spi_routing and
// spi_id.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config.h"
#include "spi_layout.h"

namespace ikelb {
namespace {

// One IPv4 virtual server "vpn" with `spi` as its spi_routing section ("" for none) and the
// given backends' extra keys (one backend per entry).
std::string doc(const std::string& spi, const std::vector<std::string>& backend_extra) {
  std::string s = R"({"interfaces": ["eth0"], "virtual_servers": [{"name": "vpn", )"
                  R"("address": "203.0.113.1", )";
  if (!spi.empty()) s += "\"spi_routing\": " + spi + ", ";
  s += "\"backends\": [";
  for (size_t i = 0; i < backend_extra.size(); i++) {
    if (i) s += ", ";
    s += "{\"name\": \"gw" + std::to_string(i + 1) + "\", \"address\": \"10.0.0." +
         std::to_string(i + 1) + "\"" + backend_extra[i] + "}";
  }
  return s + "]}]}";
}

std::vector<std::string> errors(const std::string& json) {
  std::vector<std::string> out;
  for (const auto& e : parse_config(json).errors) out.push_back(e.str());
  return out;
}

using Errors = std::vector<std::string>;

TEST(SpiLayout, DefaultsPutTheIdInTheFirstIkeByteAndEspBits20To27) {
  SpiLabelLayout l;
  EXPECT_EQ(check_layout(l), "");
  EXPECT_EQ(l.ike_mask(), 0xff00000000000000ull);
  EXPECT_EQ(l.esp_mask(), 0x0ff00000u);
  EXPECT_EQ(l.max_id(), 255u);
  StrongswanSpi s = strongswan_spi(l, 5);
  EXPECT_EQ(s.spi_mask, 0xff00000000000000ull);
  EXPECT_EQ(s.spi_label, 0x0500000000000000ull);
  EXPECT_EQ(s.spi_min, 0xc0500000u);
  EXPECT_EQ(s.spi_max, 0xc05fffffu);
  EXPECT_EQ(strongswan_conf(s),
            "charon {\n"
            "  spi_mask = 0xff00000000000000\n"
            "  spi_label = 0x0500000000000000\n"
            "  spi_min = 0xc0500000\n"
            "  spi_max = 0xc05fffff\n"
            "}\n");
}

// Every SPI strongSwan can allocate with the printed settings carries the id the data path
// reads back with the entry's mask and shift (ebpf/spi.h: (SPI & mask) >> shift).
TEST(SpiLayout, EverySpiInTheRangeReadsBackAsTheId) {
  for (SpiLabelLayout l : {SpiLabelLayout{}, SpiLabelLayout{12, 4, 16, 0x80000000u},
                           SpiLabelLayout{1, 0, 31 - 1 - 0, 0x0u}, SpiLabelLayout{16, 48, 16, 0}}) {
    ASSERT_EQ(check_layout(l), "") << l.id_bits;
    ikelb_spi_routing r = spi_routing_entry(SpiRoutingConfig{l, std::nullopt});
    EXPECT_EQ(r.flags, IKELB_SPI_LABELS);
    for (uint32_t id : {1u, l.max_id() / 2 + 1, l.max_id()}) {
      StrongswanSpi s = strongswan_spi(l, id);
      for (uint64_t random : {0ull, ~0ull, 0x0123456789abcdefull}) {
        uint64_t ike = (random & ~s.spi_mask) | s.spi_label;
        EXPECT_EQ((ike & r.ike_mask) >> r.ike_shift, id);
      }
      for (uint32_t esp : {s.spi_min, s.spi_max, s.spi_min + (s.spi_max - s.spi_min) / 3}) {
        EXPECT_EQ((esp & r.esp_mask) >> r.esp_shift, id);
        EXPECT_EQ(esp & ~(r.esp_mask | ((1u << r.esp_shift) - 1)), l.esp_prefix);
      }
      EXPECT_EQ(s.spi_max - s.spi_min, (1u << l.esp_id_shift) - 1);
    }
  }
}

TEST(SpiLayout, RejectsLayoutsWithTooLittleRoomWithTheReason) {
  EXPECT_EQ(check_layout({8, 57, 20, 0xc0000000u}),
            "the IKE id bits (ike_id_shift 57 + id_bits 8) run past bit 63 of the IKE SPI; "
            "ike_id_shift can be at most 56");
  EXPECT_EQ(check_layout({8, 56, 25, 0}),
            "the ESP id bits (esp_id_shift 25 + id_bits 8) run past bit 31 of the ESP SPI; "
            "esp_id_shift can be at most 24");
  EXPECT_EQ(check_layout({8, 56, 15, 0xc0000000u}),
            "esp_id_shift 15 leaves 15 random bits in each ESP SPI, at least 16 are needed: every "
            "inbound ESP SPI of a gateway comes from its range of 2^esp_id_shift values");
  EXPECT_EQ(check_layout({8, 56, 20, 0xc8000000u}),
            "esp_prefix 0xc8000000 has bits below bit 28, where the gateway id and the random "
            "part of the ESP SPI lie; it may only set bits 28 to 31");
  EXPECT_EQ(check_layout({17, 40, 16, 0}), "id_bits must be between 1 and 16, got 17");
}

TEST(SpiLayout, EntryCarriesLearnTimesInNanoseconds) {
  ikelb_spi_routing off = spi_routing_entry(std::nullopt);
  EXPECT_EQ(off.flags, 0);
  EXPECT_EQ(off.ike_mask, 0u);
  ikelb_spi_routing learn = spi_routing_entry(SpiRoutingConfig{std::nullopt, SpiLearn{600, 120}});
  EXPECT_EQ(learn.flags, IKELB_SPI_LEARN);
  EXPECT_EQ(learn.ike_mask, 0u);
  EXPECT_EQ(learn.ike_idle_ns, 600'000'000'000ull);
  EXPECT_EQ(learn.esp_idle_ns, 120'000'000'000ull);
  ikelb_spi_routing both = spi_routing_entry(SpiRoutingConfig{SpiLabelLayout{}, SpiLearn{}});
  EXPECT_EQ(both.flags, IKELB_SPI_LABELS | IKELB_SPI_LEARN);
  EXPECT_EQ(both.ike_shift, 56);
  EXPECT_EQ(both.esp_shift, 20);
  EXPECT_EQ(both.ike_idle_ns, 32400'000'000'000ull);
}

TEST(SpiConfig, ReadsLabelsAndLearn) {
  ConfigResult r = parse_config(doc(
      R"({"labels": {"id_bits": 4, "esp_prefix": "0x80000000"}, "learn": {"esp_idle_s": 3600}})",
      {R"(, "spi_id": 1)", R"(, "spi_id": 15)"}));
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].str());
  const auto& vs = r.config->virtual_servers.at(0);
  ASSERT_TRUE(vs.spi_routing);
  EXPECT_EQ(vs.spi_routing->labels, (SpiLabelLayout{4, 60, 24, 0x80000000u}));
  EXPECT_EQ(vs.spi_routing->learn, (SpiLearn{32400, 3600}));
  EXPECT_EQ(vs.backends[0].spi_id, 1u);
  EXPECT_EQ(vs.backends[1].spi_id, 15u);

  ConfigResult t = parse_config(doc(R"({"labels": true})", {R"(, "spi_id": 255)"}));
  ASSERT_TRUE(t.config);
  EXPECT_EQ(t.config->virtual_servers[0].spi_routing->labels, SpiLabelLayout{});
  EXPECT_FALSE(t.config->virtual_servers[0].spi_routing->learn);

  ConfigResult l = parse_config(doc(R"({"labels": false, "learn": true})", {"", ""}));
  ASSERT_TRUE(l.config);
  EXPECT_FALSE(l.config->virtual_servers[0].spi_routing->labels);
  EXPECT_EQ(l.config->virtual_servers[0].spi_routing->learn, SpiLearn{});

  ConfigResult none = parse_config(doc("", {""}));
  ASSERT_TRUE(none.config);
  EXPECT_FALSE(none.config->virtual_servers[0].spi_routing);
}

TEST(SpiConfig, SpiIdWithoutLabelsIsKeptButStillChecked) {
  ConfigResult r = parse_config(doc("", {R"(, "spi_id": 7)"}));
  ASSERT_TRUE(r.config);
  EXPECT_EQ(r.config->virtual_servers[0].backends[0].spi_id, 7u);
  EXPECT_EQ(errors(doc("", {R"(, "spi_id": 7)", R"(, "spi_id": 7)"})),
            (Errors{"/virtual_servers/0/backends/1/spi_id: spi_id 7 is already the id of backend "
                    "\"gw1\" in this virtual server"}));
}

TEST(SpiConfig, ExactErrors) {
  EXPECT_EQ(errors(doc(R"({"labels": true})", {R"(, "spi_id": 1)", ""})),
            (Errors{"/virtual_servers/0/backends/1: missing \"spi_id\": spi_routing.labels is on, "
                    "so every backend needs its gateway id (1 to 255)"}));
  EXPECT_EQ(errors(doc(R"({"labels": {"id_bits": 2}})", {R"(, "spi_id": 0)", R"(, "spi_id": 4)",
                                                         R"(, "spi_id": 3)", R"(, "spi_id": 3)"})),
            (Errors{"/virtual_servers/0/backends/0/spi_id: must be between 1 and 3 (id_bits 2), "
                    "got 0 (0 is strongSwan's default spi_label)",
                    "/virtual_servers/0/backends/1/spi_id: must be between 1 and 3 (id_bits 2), "
                    "got 4",
                    "/virtual_servers/0/backends/3/spi_id: spi_id 3 is already the id of backend "
                    "\"gw3\" in this virtual server"}));
  EXPECT_EQ(errors(doc(R"({"labels": {"esp_id_shift": 12}})", {R"(, "spi_id": 1)"})),
            (Errors{"/virtual_servers/0/spi_routing/labels: esp_id_shift 12 leaves 12 random bits "
                    "in each ESP SPI, at least 16 are needed: every inbound ESP SPI of a gateway "
                    "comes from its range of 2^esp_id_shift values"}));
  EXPECT_EQ(errors(doc(R"({"labels": {"id_bits": 8, "ike_id_shift": 60}})", {R"(, "spi_id": 1)"})),
            (Errors{"/virtual_servers/0/spi_routing/labels: the IKE id bits (ike_id_shift 60 + "
                    "id_bits 8) run past bit 63 of the IKE SPI; ike_id_shift can be at most 56"}));
  EXPECT_EQ(errors(doc(R"({"labels": {"esp_prefix": "0xc0100000"}})", {R"(, "spi_id": 1)"})),
            (Errors{"/virtual_servers/0/spi_routing/labels: esp_prefix 0xc0100000 has bits below "
                    "bit 28, where the gateway id and the random part of the ESP SPI lie; it may "
                    "only set bits 28 to 31"}));
  EXPECT_EQ(
      errors(doc(R"({"labels": {"id_bits": 0, "esp_prefix": "c0000000", "bits": 1}})", {""})),
      (Errors{"/virtual_servers/0/spi_routing/labels/id_bits: must be between 1 and 16, got 0",
              "/virtual_servers/0/spi_routing/labels/esp_prefix: must be a 32-bit hexadecimal "
              "number like \"0xc0000000\", got \"c0000000\"",
              "/virtual_servers/0/spi_routing/labels/bits: unknown key \"bits\""}));
  EXPECT_EQ(errors(doc(R"({"labels": false})", {""})),
            (Errors{"/virtual_servers/0/spi_routing: enables nothing: set \"labels\", \"learn\" "
                    "or both (or remove the section)"}));
  EXPECT_EQ(errors(doc(R"({"learn": {"ike_idle_s": 59, "esp_idle_s": 604801}})", {""})),
            (Errors{"/virtual_servers/0/spi_routing/learn/ike_idle_s: must be between 60 and "
                    "604800, got 59",
                    "/virtual_servers/0/spi_routing/learn/esp_idle_s: must be between 60 and "
                    "604800, got 604801"}));
  EXPECT_EQ(errors(doc(R"({"labels": 1, "learn": "yes"})", {R"(, "spi_id": "1")"})),
            (Errors{"/virtual_servers/0/spi_routing/labels: expected an object, got number",
                    "/virtual_servers/0/spi_routing/learn: expected an object, got string",
                    "/virtual_servers/0/backends/0/spi_id: expected an integer, got string"}));
}

}  // namespace
}  // namespace ikelb
