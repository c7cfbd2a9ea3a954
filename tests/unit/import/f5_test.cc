// F5 BIG-IP importer over the samples in import/samples/f5 and malformed input.
#include "import_test_util.h"

namespace ikelb::appliance::test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(ImportF5, AlwaysOnVpnGuideMergesUdp500And4500IntoOneVirtualServer) {
  Outcome r = run_sample(parse_f5, "f5/aovpn.conf");
  ASSERT_TRUE(r.result.ok) << r.report;
  ASSERT_EQ(r.config["virtual_servers"].size(), 1u);
  const auto& vs = r.vs(0);
  EXPECT_EQ(vs["name"], "aovpn_ike");
  EXPECT_EQ(vs["address"], "198.51.100.20");
  EXPECT_EQ(vs["ports"], nlohmann::json::array({500, 4500}));
  EXPECT_EQ(vs["esp"], false);  // the appliance had no ESP service
  ASSERT_EQ(vs["backends"].size(), 4u);
  // Ratios 2, 2, 1, 1 (ratio-member) scale to weights; "session user-disabled" drains.
  EXPECT_EQ(vs["backends"][0],
            (nlohmann::json{{"name", "rras01"}, {"address", "10.0.10.11"}, {"weight", 200}}));
  EXPECT_EQ(vs["backends"][1]["weight"], 200);
  EXPECT_EQ(vs["backends"][2]["weight"], 100);
  EXPECT_EQ(vs["backends"][3]["state"], "draining");
  EXPECT_FALSE(vs["backends"][2].contains("state"));
  // Persistence profile timeout 28800 with match-across-services.
  EXPECT_EQ(r.config["affinity"]["idle_timeout_s"], 28800);
  EXPECT_FALSE(r.has_note("separate persistence tables"));
  EXPECT_FALSE(r.has_note("never translates the source"));  // SNAT none
  EXPECT_TRUE(
      r.has_note("monitor /Common/aovpn_gw_icmp (gateway-icmp) -> replaced by ikelb's "
                 "IKE_SA_INIT probes"));
  EXPECT_THAT(r.lines(Severity::kProblem), IsEmpty());
  EXPECT_THAT(r.report, HasSubstr("F5 BIG-IP import: 1 virtual server(s), 4 backend(s)"));
}

TEST(ImportF5, AnyPortEspAndIpv6WithoutFolderPrefixes) {
  Outcome r = run_sample(parse_f5, "f5/any-esp.conf");
  ASSERT_TRUE(r.result.ok) << r.report;
  ASSERT_EQ(r.config["virtual_servers"].size(), 2u);
  EXPECT_EQ(r.vs(0)["address"], "203.0.113.30");
  EXPECT_EQ(r.vs(0)["ports"], nlohmann::json::array({500, 4500}));
  EXPECT_EQ(r.vs(0)["esp"], true);                         // ip-protocol 50
  EXPECT_EQ(r.vs(0)["backends"][1]["state"], "disabled");  // node forced offline
  EXPECT_EQ(r.vs(1)["address"], "2001:db8:100::30");       // "2001:db8:100::30.isakmp"
  EXPECT_EQ(r.vs(1)["name"], "vpn6");
  EXPECT_EQ(r.vs(1)["backends"][0]["address"], "2001:db8:20::21");
  EXPECT_EQ(r.config["affinity"]["idle_timeout_s"], 180);  // built-in source_addr
  EXPECT_TRUE(r.has_note("source-address-translation automap: ikelb never translates the source"));
  EXPECT_TRUE(r.has_note("separate persistence tables"));  // no match-across-services
  EXPECT_TRUE(r.has_note("forced offline"));
}

TEST(ImportF5, TcpServiceOnTheVipFailsUnlessForcedAndOtherAddressesAreIgnored) {
  Outcome r = run_sample(parse_f5, "f5/mixed.conf");
  ASSERT_FALSE(r.result.ok);
  // The SSTP virtual server on the VIP; the iRule of the web server elsewhere does not count.
  EXPECT_THAT(r.lines(Severity::kProblem),
              ElementsAre(HasSubstr("67: \"/Common/aovpn_sstp\" (tcp 198.51.100.20 443)")));
  EXPECT_THAT(r.lines(Severity::kFatal), IsEmpty());  // the iRule's Tcl did not confuse the lexer
  EXPECT_THAT(r.report, HasSubstr("[--force=services drops it]"));
  EXPECT_THAT(r.report, HasSubstr("refused: 1 error(s); --force=services"));

  Outcome forced = run_sample(parse_f5, "f5/mixed.conf", forcing({ProblemKind::kServices}));
  ASSERT_TRUE(forced.result.ok) << forced.report;
  EXPECT_EQ(forced.config["virtual_servers"].size(), 1u);
  EXPECT_EQ(forced.vs(0)["backends"].size(), 2u);
  EXPECT_THAT(forced.report, HasSubstr("dropped: f5/mixed.conf:67"));
  EXPECT_TRUE(forced.has_note("were not imported: /Common/intranet_https"));
}

TEST(ImportF5, PoolSharedByTwoVipsFailsUnlessTheSecondIsDropped) {
  Outcome r = run_sample(parse_f5, "f5/shared-pool.conf");
  ASSERT_FALSE(r.result.ok);
  EXPECT_THAT(r.lines(Severity::kProblem, ProblemKind::kShared),
              ElementsAre(HasSubstr("16: VIP 198.51.100.22 (pool \"/Common/rras_pool\") shares "
                                    "gateways")));
  Outcome forced = run_sample(parse_f5, "f5/shared-pool.conf", forcing({ProblemKind::kShared}));
  ASSERT_TRUE(forced.result.ok);
  ASSERT_EQ(forced.config["virtual_servers"].size(), 1u);
  EXPECT_EQ(forced.vs(0)["address"], "198.51.100.21");
}

TEST(ImportF5, DifferentMembersFor500And4500FailUnlessReducedToTheCommonOnes) {
  Outcome r = run_sample(parse_f5, "f5/mismatch.conf");
  ASSERT_FALSE(r.result.ok);
  EXPECT_THAT(r.lines(Severity::kProblem, ProblemKind::kMismatch),
              ElementsAre(HasSubstr("14: the services of VIP 198.51.100.20 have different "
                                    "members (10.0.10.13 only in \"/Common/vpn_500\")")));
  Outcome forced = run_sample(parse_f5, "f5/mismatch.conf", forcing({ProblemKind::kMismatch}));
  ASSERT_TRUE(forced.result.ok);
  ASSERT_EQ(forced.vs(0)["backends"].size(), 2u);
  EXPECT_EQ(forced.vs(0)["backends"][1]["address"], "10.0.10.12");
}

constexpr const char* kOneVip = R"(ltm pool p {
    members {
        10.0.10.11:500 {
            address 10.0.10.11
            RATIO_LINE
        }
    }
}
ltm virtual v {
    destination DEST
    ip-protocol udp
    pool p
    EXTRA
}
)";

std::string one_vip(std::string dest, std::string extra, std::string ratio = "ratio 1") {
  std::string s = kOneVip;
  s.replace(s.find("DEST"), 4, dest);
  s.replace(s.find("EXTRA"), 5, extra);
  s.replace(s.find("RATIO_LINE"), 10, ratio);
  return s;
}

TEST(ImportF5, SettingsIkelbCannotReproduceNameTheirLine) {
  Outcome unknown = run_text(parse_f5, one_vip("10.1.1.1:500", "frobnicate yes"), "x.conf");
  EXPECT_THAT(unknown.lines(Severity::kProblem, ProblemKind::kUnsupported),
              ElementsAre("13: ltm virtual v: unknown property \"frobnicate\" (skipped)"));
  EXPECT_TRUE(run_text(parse_f5, one_vip("10.1.1.1:500", "frobnicate yes"), "x.conf",
                       forcing({ProblemKind::kUnsupported}))
                  .result.ok);

  Outcome rd = run_text(parse_f5, one_vip("10.1.1.1%3:500", ""), "x.conf");
  EXPECT_THAT(rd.lines(Severity::kProblem, ProblemKind::kUnsupported),
              ElementsAre(HasSubstr("10: ltm virtual v: route domain %3")));

  Outcome port = run_text(parse_f5, one_vip("10.1.1.1:4500", ""), "x.conf");
  EXPECT_THAT(port.lines(Severity::kProblem, ProblemKind::kUnsupported),
              ElementsAre(HasSubstr("3: member \"10.0.10.11\" listens on port 500"),
                          "9: VIP 10.1.1.1 has no usable member: not imported"));
  // Every member dropped: the VIP has none left, and nothing is written.
  EXPECT_FALSE(run_text(parse_f5, one_vip("10.1.1.1:4500", ""), "x.conf",
                        forcing({ProblemKind::kUnsupported}))
                   .result.ok);

  Outcome ratio = run_text(parse_f5, one_vip("10.1.1.1:500", "", "ratio 0"), "x.conf");
  EXPECT_THAT(ratio.lines(Severity::kProblem, ProblemKind::kInvalid),
              ElementsAre(HasSubstr("5: member 10.0.10.11:500: ratio \"0\" is not 1 to 65535")));

  Outcome dest = run_text(parse_f5, one_vip("10.1.1.1:notaport", ""), "x.conf");
  EXPECT_THAT(dest.lines(Severity::kProblem, ProblemKind::kInvalid),
              ElementsAre(HasSubstr("10: ltm virtual v: destination \"10.1.1.1:notaport\"")));

  Outcome irule =
      run_text(parse_f5, one_vip("10.1.1.1:500", "rules {\n        /Common/pick\n    }"), "x.conf");
  EXPECT_THAT(irule.lines(Severity::kProblem, ProblemKind::kUnsupported),
              ElementsAre(HasSubstr("13: ltm virtual v: iRules")));

  Outcome fine =
      run_text(parse_f5, one_vip("10.1.1.1:isakmp", "translate-address enabled"), "x.conf");
  EXPECT_TRUE(fine.result.ok) << fine.report;

  Outcome limited = run_text(parse_f5, one_vip("10.1.1.1:500", "rate-limit 500"), "x.conf");
  EXPECT_TRUE(limited.result.ok) << limited.report;
  EXPECT_TRUE(limited.has_note("rate-limit 500 (connections per second) is not imported"));
}

TEST(ImportF5, SyntaxErrorsStopTheImportEvenWhenEverythingIsForced) {
  ImportOptions all;
  std::string error;
  ASSERT_TRUE(parse_force("all", all.force, error));
  struct Case {
    std::string text;
    std::string expected;
  } cases[] = {
      {"ltm virtual v {\n    destination 10.1.1.1:500\n", "1: \"{\" is never closed"},
      {"ltm pool p {\n}\n}\n", "3: \"}\" without a matching \"{\""},
      {"ltm virtual v {\n  description \"open\n}\n", "2: quoted string is never closed"},
      {std::string(100, '{'), "1: blocks nested too deeply"},
      {"ltm rule r {\n when X {\n", "1: \"{\" is never closed"},
  };
  for (const Case& c : cases) {
    Outcome r = run_text(parse_f5, c.text, "bad.conf", all);
    EXPECT_FALSE(r.result.ok) << c.text;
    EXPECT_THAT(r.lines(Severity::kFatal), ElementsAre(c.expected)) << c.text;
  }
  Outcome empty = run_text(parse_f5, "", "empty.conf", all);
  EXPECT_THAT(empty.lines(Severity::kFatal),
              ElementsAre(HasSubstr("no IKE virtual server (UDP 500/4500, ESP or any-protocol)")));
}

}  // namespace
}  // namespace ikelb::appliance::test
