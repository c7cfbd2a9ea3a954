// convert() and the report on hand-built appliance models: force kinds, --name, table sizes.
#include "import_test_util.h"

namespace ikelb::appliance::test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Service udp(std::string name, std::string vip, uint16_t port, std::vector<std::string> gateways,
            size_t line) {
  Service s;
  s.name = std::move(name);
  s.address = std::move(vip);
  s.protocol = Protocol::kUdp;
  s.protocol_text = "udp";
  s.port = port;
  s.where = {"m.conf", line, ""};
  s.pool = s.name + "_pool";
  for (const auto& g : gateways) {
    Member m;
    m.name = g;
    m.address = g;
    m.port = port;
    m.where = {"m.conf", line + 1, ""};
    s.members.push_back(m);
  }
  return s;
}

TEST(ImportModel, ParseForce) {
  std::set<ProblemKind> kinds;
  std::string error;
  EXPECT_TRUE(parse_force("services,shared", kinds, error));
  EXPECT_EQ(kinds, (std::set<ProblemKind>{ProblemKind::kServices, ProblemKind::kShared}));
  EXPECT_TRUE(parse_force("all", kinds, error));
  EXPECT_EQ(kinds.size(), 5u);
  EXPECT_FALSE(parse_force("services,everything", kinds, error));
  EXPECT_THAT(error, HasSubstr("unknown --force kind \"everything\""));
}

TEST(ImportModel, NameSelectsOneVipWithItsSiblings) {
  ApplianceConfig a;
  a.vendor = "test";
  a.services = {udp("a_500", "192.0.2.1", 500, {"10.0.0.1"}, 1),
                udp("a_4500", "192.0.2.1", 4500, {"10.0.0.1"}, 5),
                udp("b_500", "192.0.2.2", 500, {"10.0.0.2"}, 9)};
  ImportOptions o;
  o.names = {"a_4500"};
  o.interfaces = {"ens1", "ens2"};
  ImportResult r = convert(a, o);
  ASSERT_TRUE(r.ok);
  auto j = nlohmann::json::parse(r.config_json);
  ASSERT_EQ(j["virtual_servers"].size(), 1u);
  EXPECT_EQ(j["virtual_servers"][0]["ports"], nlohmann::json::array({500, 4500}));
  EXPECT_EQ(j["interfaces"], nlohmann::json::array({"ens1", "ens2"}));

  o.names = {"nope"};
  ImportResult missing = convert(a, o);
  EXPECT_FALSE(missing.ok);
  EXPECT_THAT(format_report(missing, "test", {}),
              HasSubstr("error: --name nope: no virtual server of that name in the file"));
}

TEST(ImportModel, DisabledServicesAreNamedNotImported) {
  ApplianceConfig a;
  a.services = {udp("v_500", "192.0.2.1", 500, {"10.0.0.1"}, 1),
                udp("v_4500", "192.0.2.1", 4500, {"10.0.0.1"}, 5),
                udp("off_500", "192.0.2.2", 500, {"10.0.0.2"}, 9)};
  a.services[1].enabled = false;
  a.services[2].enabled = false;
  ImportResult r = convert(a, {});
  ASSERT_TRUE(r.ok);
  auto j = nlohmann::json::parse(r.config_json);
  ASSERT_EQ(j["virtual_servers"].size(), 1u);
  EXPECT_EQ(j["virtual_servers"][0]["ports"], nlohmann::json::array({500}));
  std::string report = format_report(r, "test", {});
  EXPECT_THAT(report, HasSubstr("note: m.conf:5: \"v_4500\" (udp 192.0.2.1 4500) is disabled on "
                                "the appliance: not imported"));
  EXPECT_THAT(report, HasSubstr("note: m.conf:9: \"off_500\" (udp 192.0.2.2 500) is disabled"));
}

TEST(ImportModel, LargePoolsGetAPrimeTableOfAHundredSlotsPerGateway) {
  std::vector<std::string> gws;
  for (int i = 0; i < 700; i++)
    gws.push_back("10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1));
  ApplianceConfig a;
  a.services = {udp("big", "192.0.2.1", 500, gws, 1)};
  ImportResult r = convert(a, {});
  ASSERT_TRUE(r.ok) << format_report(r, "test", {});
  auto j = nlohmann::json::parse(r.config_json);
  EXPECT_EQ(j["virtual_servers"][0]["maglev_table_size"], 70001);  // first prime >= 70000
}

TEST(ImportModel, ServicesOn4500OnlyProbeOn4500AndVipsNeedAMember) {
  ApplianceConfig a;
  a.services = {udp("natt", "192.0.2.1", 4500, {"10.0.0.1"}, 1),
                udp("empty", "192.0.2.9", 500, {}, 7)};
  ImportResult r = convert(a, forcing({ProblemKind::kUnsupported}));
  ASSERT_TRUE(r.ok) << format_report(r, "test", {ProblemKind::kUnsupported});
  auto j = nlohmann::json::parse(r.config_json);
  ASSERT_EQ(j["virtual_servers"].size(), 1u);
  EXPECT_EQ(j["virtual_servers"][0]["health_check"], (nlohmann::json{{"port", 4500}}));
  EXPECT_THAT(format_report(r, "test", {ProblemKind::kUnsupported}),
              HasSubstr("dropped: m.conf:7: VIP 192.0.2.9 has no usable member: not imported "
                        "[unsupported]"));
}

TEST(ImportModel, WeightAndStateDifferencesAreMismatches) {
  ApplianceConfig a;
  a.services = {udp("v_500", "192.0.2.1", 500, {"10.0.0.1", "10.0.0.2"}, 1),
                udp("v_4500", "192.0.2.1", 4500, {"10.0.0.1", "10.0.0.2"}, 5)};
  a.services[1].members[0].weight = 300;
  a.services[1].members[1].state = ConfiguredState::kDraining;
  ImportResult r = convert(a, {});
  ASSERT_FALSE(r.ok);
  std::string report = format_report(r, "test", {});
  EXPECT_THAT(report, HasSubstr("(10.0.0.1 weight 100 vs 300; 10.0.0.2 enabled vs draining)"));
  ImportResult forced = convert(a, forcing({ProblemKind::kMismatch}));
  ASSERT_TRUE(forced.ok);
  auto j = nlohmann::json::parse(forced.config_json);
  EXPECT_EQ(j["virtual_servers"][0]["backends"][0]["weight"], 100);        // the first service's
  EXPECT_EQ(j["virtual_servers"][0]["backends"][1]["state"], "draining");  // the stricter
}

TEST(ImportModel, AGatewayThatIsAlsoAVipIsRejectedByTheValidator) {
  ApplianceConfig a;
  a.services = {udp("a", "192.0.2.1", 500, {"10.0.0.1"}, 1),
                udp("b", "10.0.0.1", 500, {"10.0.0.2"}, 5)};
  ImportResult r =
      convert(a, forcing({ProblemKind::kServices, ProblemKind::kShared, ProblemKind::kMismatch,
                          ProblemKind::kUnsupported, ProblemKind::kInvalid}));
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(format_report(r, "test", {}),
              HasSubstr("error: the generated ikelb config is invalid: "
                        "/virtual_servers/0/backends/0/address"));
}

}  // namespace
}  // namespace ikelb::appliance::test
