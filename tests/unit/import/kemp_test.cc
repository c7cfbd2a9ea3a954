// Kemp LoadMaster importer over the samples in import/samples/kemp and malformed input.
#include "import_test_util.h"

namespace ikelb::appliance::test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(ImportKemp, AlwaysOnVpnGuideTransparentPortFollowingSourceIp) {
  Outcome r = run_sample(parse_kemp, "kemp/aovpn.xml");
  ASSERT_TRUE(r.result.ok) << r.report;
  ASSERT_EQ(r.config["virtual_servers"].size(), 1u);
  const auto& vs = r.vs(0);
  EXPECT_EQ(vs["name"], "AOVPN-IKEv2");
  EXPECT_EQ(vs["ports"], nlohmann::json::array({500, 4500}));
  ASSERT_EQ(vs["backends"].size(), 3u);
  EXPECT_EQ(vs["backends"][0]["weight"], 100);  // round robin: the weights are not used
  EXPECT_EQ(vs["backends"][2], (nlohmann::json{{"name", "10.0.10.13"},
                                               {"address", "10.0.10.13"},
                                               {"weight", 100},
                                               {"state", "disabled"}}));
  EXPECT_EQ(r.config["affinity"]["idle_timeout_s"], 3600);
  EXPECT_FALSE(r.has_note("separate persistence tables"));  // port following
  EXPECT_FALSE(r.has_note("Transparent N"));
  EXPECT_TRUE(r.has_note("real server check icmp -> replaced by ikelb's IKE_SA_INIT probes"));
  EXPECT_THAT(r.lines(Severity::kProblem), IsEmpty());
  // Locations carry the line and the element.
  bool located = false;
  for (const Finding& f : r.result.findings)
    located |= f.where.str() == "kemp/aovpn.xml:108 (VS 1 / Rs 3)";
  EXPECT_TRUE(located) << r.report;
}

TEST(ImportKemp, WeightedSchedulingNonTransparentAndIpv6) {
  Outcome r = run_sample(parse_kemp, "kemp/weighted-dual.xml");
  ASSERT_TRUE(r.result.ok) << r.report;
  ASSERT_EQ(r.config["virtual_servers"].size(), 2u);
  EXPECT_EQ(r.vs(0)["name"], "vpn");
  EXPECT_EQ(r.vs(0)["backends"][0]["weight"], 2000);
  EXPECT_EQ(r.vs(0)["backends"][1]["weight"], 1000);
  EXPECT_EQ(r.vs(1)["address"], "2001:db8:100::30");
  EXPECT_EQ(r.vs(1)["ports"], nlohmann::json::array({500}));
  EXPECT_EQ(r.config["affinity"]["idle_timeout_s"], 7200);
  EXPECT_TRUE(r.has_note("Transparent N"));
  EXPECT_TRUE(r.has_note("were not imported: intranet"));
}

TEST(ImportKemp, PortTranslationDirectReturnAndTcpAreProblems) {
  Outcome r = run_sample(parse_kemp, "kemp/mixed.xml");
  ASSERT_FALSE(r.result.ok);
  EXPECT_THAT(r.lines(Severity::kProblem),
              ElementsAre(HasSubstr("18: member \"10.0.10.12\" listens on port 5000"),
                          HasSubstr("33: VS 2 / Rs 4: forwarding \"route\""),
                          HasSubstr("35: \"AOVPN SSTP\" (tcp 198.51.100.20 443)")));
  ImportOptions all;
  std::string error;
  ASSERT_TRUE(parse_force("all", all.force, error));
  Outcome forced = run_sample(parse_kemp, "kemp/mixed.xml", all);
  ASSERT_TRUE(forced.result.ok) << forced.report;
  ASSERT_EQ(forced.vs(0)["backends"].size(), 1u);
  EXPECT_EQ(forced.vs(0)["backends"][0]["address"], "10.0.10.11");
}

TEST(ImportKemp, MalformedXmlAndFailedApiAnswersAreFatal) {
  ImportOptions all;
  std::string error;
  ASSERT_TRUE(parse_force("all", all.force, error));
  Outcome broken = run_text(parse_kemp, "<Response stat=\"200\">\n<Success>\n<Data>\n<VS>\n</Data>",
                            "x.xml", all);
  EXPECT_THAT(broken.lines(Severity::kFatal), ElementsAre(HasSubstr("5: not well-formed XML: ")));
  Outcome refused = run_text(parse_kemp,
                             "<Response stat=\"401\" code=\"fail\"><Error>Authorization "
                             "required</Error></Response>",
                             "x.xml", all);
  EXPECT_THAT(
      refused.lines(Severity::kFatal),
      ElementsAre(HasSubstr("the LoadMaster answered stat=\"401\": Authorization required")));
  Outcome other = run_text(parse_kemp, "<html><body>login</body></html>", "x.xml", all);
  EXPECT_THAT(other.lines(Severity::kFatal), ElementsAre(HasSubstr("1: expected <Response")));
  Outcome no_address = run_text(parse_kemp,
                                "<Response stat=\"200\"><Success><Data><VS><Index>4</Index>"
                                "<VSPort>500</VSPort><Protocol>udp</Protocol></VS></Data></Success>"
                                "</Response>",
                                "x.xml");
  EXPECT_THAT(no_address.lines(Severity::kProblem, ProblemKind::kInvalid),
              ElementsAre("1: VS 4: no <VSAddress>; not imported"));
}

}  // namespace
}  // namespace ikelb::appliance::test
