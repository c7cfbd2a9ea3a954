// Citrix ADC importer over the samples in import/samples/citrix and malformed input.
#include "import_test_util.h"

namespace ikelb::appliance::test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(ImportCitrix, AlwaysOnVpnGuideWithPersistencyGroupAndUseSourceIp) {
  Outcome r = run_sample(parse_citrix, "citrix/aovpn.conf");
  ASSERT_TRUE(r.result.ok) << r.report;
  ASSERT_EQ(r.config["virtual_servers"].size(), 1u);
  const auto& vs = r.vs(0);
  EXPECT_EQ(vs["name"], "VS_AOVPN");
  EXPECT_EQ(vs["address"], "198.51.100.20");
  EXPECT_EQ(vs["ports"], nlohmann::json::array({500, 4500}));
  ASSERT_EQ(vs["backends"].size(), 4u);
  EXPECT_EQ(vs["backends"][0],
            (nlohmann::json{{"name", "RRAS01"}, {"address", "10.0.10.11"}, {"weight", 200}}));
  EXPECT_EQ(vs["backends"][2]["weight"], 100);
  EXPECT_EQ(vs["backends"][3]["state"], "disabled");
  EXPECT_EQ(r.config["affinity"]["idle_timeout_s"], 480 * 60);  // the group's timeout, minutes
  EXPECT_FALSE(r.has_note("separate persistence tables"));      // persistency group
  EXPECT_FALSE(r.has_note("Use Source IP"));                    // -usip YES
  EXPECT_TRUE(r.has_note("monitor MON_AOVPN_PING (PING) -> replaced by ikelb's IKE_SA_INIT"));
  EXPECT_THAT(r.lines(Severity::kProblem), IsEmpty());
}

TEST(ImportCitrix, AnyVserverWithServicesGlobalUsipAndGracefulDisable) {
  Outcome r = run_sample(parse_citrix, "citrix/any-services.conf");
  ASSERT_TRUE(r.result.ok) << r.report;
  const auto& vs = r.vs(0);
  EXPECT_EQ(vs["address"], "203.0.113.30");
  EXPECT_EQ(vs["ports"], nlohmann::json::array({500, 4500}));
  EXPECT_EQ(vs["esp"], true);                   // ANY *
  EXPECT_EQ(vs["backends"][0]["weight"], 300);  // bind lb vserver ... -weight 3
  EXPECT_EQ(vs["backends"][1]["state"], "draining");
  EXPECT_EQ(r.config["affinity"]["idle_timeout_s"], 3600);
  EXPECT_FALSE(r.has_note("Use Source IP"));  // enable ns mode USIP
  EXPECT_TRUE(r.has_note("-lbMethod SOURCEIPHASH -> Maglev"));
  EXPECT_TRUE(r.has_note("mon_ike (UDP-ECV)"));
}

TEST(ImportCitrix, EveryProblemLineIsNamedAndForceDropsThem) {
  Outcome r = run_sample(parse_citrix, "citrix/mixed.conf");
  ASSERT_FALSE(r.result.ok);
  EXPECT_THAT(r.lines(Severity::kProblem),
              ElementsAre("6: add serviceGroup SG_NATT: unknown option -fancynewoption (skipped)",
                          HasSubstr("10: lb vserver VS_NATT: -backupVServer VS_NATT_DR"),
                          HasSubstr("11: \"VS_SSTP\" (ssl_bridge 198.51.100.20 443): ikelb "
                                    "forwards only"),
                          "24: unknown syntax \"this\" (not an ns.conf command); the line is "
                          "skipped",
                          "25: quoted string is never closed; the line is skipped"));
  EXPECT_TRUE(r.has_note("services without -usip YES"));
  EXPECT_THAT(r.report, HasSubstr("--force=services,unsupported drops the elements"));

  Outcome forced = run_sample(parse_citrix, "citrix/mixed.conf",
                              forcing({ProblemKind::kServices, ProblemKind::kUnsupported}));
  ASSERT_TRUE(forced.result.ok) << forced.report;
  EXPECT_EQ(forced.vs(0)["backends"].size(), 2u);
  EXPECT_TRUE(forced.has_note("were not imported: VS_WEB"));
}

TEST(ImportCitrix, ServiceGroupBehindTwoVipsIsShared) {
  Outcome r = run_sample(parse_citrix, "citrix/shared-servicegroup.conf");
  EXPECT_THAT(r.lines(Severity::kProblem, ProblemKind::kShared),
              ElementsAre(HasSubstr("5: VIP 198.51.100.22 (pool \"SG_RRAS\")")));
}

TEST(ImportCitrix, CommandsOutOfOrderOrChangedLaterAreProblems) {
  Outcome r = run_text(parse_citrix,
                       "bind lb vserver VS SG\n"
                       "add server A 10.0.0.1\n"
                       "add serviceGroup SG UDP -usip YES\n"
                       "add lb vserver VS UDP 192.0.2.1 500\n"
                       "set lb vserver VS -timeout 5\n"
                       "bind lb vserver VS SG\n"
                       "bind serviceGroup SG A 500 -weight 101\n"
                       "bind serviceGroup SG A 500\n"
                       "add lb vserver VS2 UDP 192.0.2.2 nope\n",
                       "ns.conf");
  EXPECT_THAT(r.lines(Severity::kProblem),
              ElementsAre("1: bind lb vserver: VS is not added before this line",
                          HasSubstr("5: set lb vserver: changes after \"add\" are not read"),
                          "7: weight \"101\" is not 1 to 100",
                          "9: lb vserver VS2: port \"nope\" is not a port; not imported"));
}

}  // namespace
}  // namespace ikelb::appliance::test
