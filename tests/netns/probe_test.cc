// IKE health probes end to end: ikelbd probes real strongSwan gateways (charon in network
// namespaces, tests/netns/strongswan.sh) and fake responders, and `ikelbctl --json backends`
// must report what the gateways really do. ike-scan, an independent IKE prober, is run against
// the same gateways from the same namespace and must reach the same verdict.
//
//   PREFIX-lb   g<i> 10.0.<i>.1/24   ikelbd (probes from here), ike-scan
//        |
//   PREFIX-gw<i> e0 10.0.<i>.2/24    charon (sw_gateway_start) or ikelb_netns_tool serve
//
// Nothing is forwarded: probes and ike-scan are ordinary sockets of the lb namespace, and their
// answers are addressed to lb's own addresses, which the XDP program passes untranslated. The
// VIPs are not routed anywhere. Every process, charon, namespace and mount a test creates is
// removed in TearDown, also when the test failed.
//
// Which group a gateway prefers decides what a stateless probe costs it (healthcheck/session.h):
// the probe offers {31, 19, 14} with an X25519 KE. strongSwan picks the first of its configured
// proposals that matches; its built-in "default" proposal lists CURVE_25519 first (then
// CURVE_448, ECP_256, ...), so a default gateway accepts the very first probe and keeps one
// half-open IKE_SA for 30 s. Gateways here therefore get explicit proposals: kPreferEcp256 makes
// every probe, the first included, end in INVALID_KE_PAYLOAD(19) and leave nothing behind;
// kPreferX25519 shows the one-half-open-SA cost of the first probe (and is what full mode needs
// to get a complete IKE_SA_INIT response at once). The last proposal of both lets plain
// `ike-scan --ikev2` (AES/3DES, SHA1/MD5, groups 2, 5, 14) match too.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "netns_fixture.h"
#include "process.h"

// In ikelb::test for the process helpers of support/process.h.
namespace ikelb::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
using Ms = std::chrono::milliseconds;

constexpr const char* kPreferEcp256 =
    "aes256-sha256-ecp256,aes256-sha256-x25519-modp2048,aes256-aes128-sha256-sha1-modp2048-"
    "modp1024";
constexpr const char* kPreferX25519 =
    "aes256-sha256-x25519,aes256-sha256-ecp256-modp2048,aes256-aes128-sha256-sha1-modp2048-"
    "modp1024";
// Shares nothing with the probe (AES-CBC-256, PRF/HMAC-SHA2-256, groups 31/19/14) nor with
// ike-scan's default offer: both are answered NO_PROPOSAL_CHOSEN.
constexpr const char* kNoOverlap = "aes128gcm16-prfsha384-ecp384";

// The fake responder's answer after the probe's SPIi: byte 17 of the datagram (the version) is
// 'n' (0x6e), so the prober must call it malformed rather than ignore it as someone else's.
constexpr const char* kGarbage = "garbage, not an IKE message";

long ms_between(Clock::time_point a, Clock::time_point b) {
  return static_cast<long>(std::chrono::duration_cast<Ms>(b - a).count());
}

// The health check settings of a virtual server, as config JSON.
Json stateless(int interval_ms, int timeout_ms, int rise, int fall) {
  return {{"mode", "stateless"},
          {"interval_ms", interval_ms},
          {"timeout_ms", timeout_ms},
          {"rise", rise},
          {"fall", fall},
          {"jitter_ms", 0}};
}

struct VirtualServer {
  std::string name, vip;
  Json health_check;
  std::vector<int> gateways;  // backend gw<i> at 10.0.<i>.2
};

class NetnsProbeTest : public NetnsFixture {
 protected:
  NetnsProbeTest()
      : NetnsFixture({.ikelbd = IKELBD_PATH,
                      .ikelbctl = IKELBCTL_PATH,
                      .netns_tool = IKELB_NETNS_TOOL_PATH,
                      .strongswan_sh = STRONGSWAN_SH_PATH,
                      .work_dir_template = "/tmp/ikelb-probe-XXXXXX",
                      .prefix = "pr",
                      .mac_tag = 0x1c}) {}

  // ---- topology ----

  void SetUp() override {
    NetnsFixture::SetUp();
    if (HasFatalFailure()) return;
    add_namespace("lb");
  }

  void check_agent_teardown(const RunResult& r, int) override {
    if (r.exit_code != 0) ADD_FAILURE() << "ikelbctl teardown: " << r.output;
  }

  void dump_logs() override {
    NetnsFixture::dump_logs();
    for (const auto& [wd, name] : charons_)
      std::fprintf(stderr, "---- %s charon.log ----\n%s\n", name.c_str(),
                   tail(read_file(wd + "/charon.log"), 2000).c_str());
    for (int i : responders_)
      std::fprintf(stderr, "---- gw%d serve output ----\n%s\n", i,
                   tail(read_file(serve_out(i)), 1000).c_str());
  }

  static std::string gw(int i) { return "gw" + std::to_string(i); }
  static std::string gw_address(int i) { return "10.0." + std::to_string(i) + ".2"; }

  // Namespace gw<i>, joined to lb by g<i> (10.0.<i>.1) -- e0 (10.0.<i>.2). Nothing runs in it.
  // Permanent neighbours: no probe waits for ARP, so the timings measured are the prober's.
  void add_gateway(int i) {
    add_namespace(gw(i));
    link_gateway(i, i, /*routed=*/false);
    gateways_.push_back(i);
  }

  // ---- strongSwan (tests/netns/strongswan.sh) ----

  RunResult sw(const std::string& function, const Argv& args, Ms timeout = 20s) {
    Argv argv = {function};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(NetnsFixture::sw(argv), timeout);
  }

  // strongswan.sh WORKDIR of gw<i>'s charon.
  std::string charon_dir(int i) const { return dir_ + "/sw" + std::to_string(i); }

  // A real charon answering on 10.0.<i>.2 with IKE proposals `ike`.
  void start_charon(int i, const std::string& ike) {
    const std::string wd = charon_dir(i);
    charons_[wd] = gw(i);  // stopped in TearDown whatever happens (idempotent)
    RunResult r =
        sw("sw_gateway_start", {ns(gw(i)), wd, gw_address(i), "--ike", ike, "--no-ts-addr"});
    if (r.exit_code != 0)
      throw std::runtime_error("sw_gateway_start gw" + std::to_string(i) + ": " + r.output);
  }

  void stop_charon(int i) {
    RunResult r = sw("sw_gateway_stop", {ns(gw(i)), charon_dir(i)});
    if (r.exit_code != 0)
      throw std::runtime_error("sw_gateway_stop gw" + std::to_string(i) + ": " + r.output);
  }

  int sw_count(const std::string& function, int i) {
    RunResult r = sw(function, {ns(gw(i)), charon_dir(i)}, 10s);
    if (r.exit_code != 0)
      throw std::runtime_error(function + " gw" + std::to_string(i) + ": " + r.output);
    return std::stoi(r.output);
  }
  int half_open(int i) { return sw_count("sw_half_open", i); }
  int ike_sas(int i) { return sw_count("sw_ike_sa_count", i); }
  // The IKE_SA count once it has settled on `want` (within 2 s), else the last count read. While
  // probes keep arriving, an IKE_SA_INIT being answered is briefly an IKE_SA of its own in
  // charon's count (until its INVALID_KE_PAYLOAD reply destroys it); a lasting one stays
  // half-open for 30 s, so a wrong count cannot settle in time.
  int settled_ike_sas(int i, int want) {
    const auto until = Clock::now() + 2s;
    int n = ike_sas(i);
    while (n != want && Clock::now() < until) {
      std::this_thread::sleep_for(50ms);
      n = ike_sas(i);
    }
    return n;
  }

  // A fake responder on UDP 500/4500 of gw<i>: ikelb_netns_tool serve, which answers "R" +
  // payload (extra options: e.g. --ike-garbage TEXT).
  void start_responder(int i, const Argv& options) {
    responders_.push_back(i);
    start_serve(i, dir_ + "/serve" + std::to_string(i) + ".log", options);
  }

  // ---- the agent ----

  void write_config(const std::vector<VirtualServer>& servers) {
    Json ifs = Json::array(), vss = Json::array();
    for (int i : gateways_) ifs.push_back("g" + std::to_string(i));
    for (const auto& vs : servers) {
      Json backends = Json::array();
      for (int i : vs.gateways) backends.push_back({{"name", gw(i)}, {"address", gw_address(i)}});
      vss.push_back({{"name", vs.name},
                     {"address", vs.vip},
                     {"maglev_table_size", 1009},
                     {"health_check", vs.health_check},
                     {"backends", backends}});
    }
    Json config = {{"interfaces", ifs},
                   {"bpffs", bpffs_ + "/ikelb"},
                   {"admin", {{"socket", socket_}}},
                   {"metrics", {{"listen", nullptr}}},
                   {"affinity", {{"idle_timeout_s", 60}, {"max_entries", 4096}}},
                   {"log_level", "info"},
                   {"virtual_servers", vss}};
    std::ofstream(config_path_) << config.dump(2) << "\n";
  }

  Json backend(int i) { return NetnsFixture::backend(gw(i)); }

  // Polls gw<i>'s entry of `ikelbctl --json backends` until `done` holds or `timeout` passed.
  struct Polled {
    Json b;
    bool done = false;
    Clock::time_point at;  // when the entry that satisfied `done` was read
  };
  Polled wait_for(int i, const std::function<bool(const Json&)>& done, Ms timeout) {
    const auto deadline = Clock::now() + timeout;
    Polled p;
    for (;;) {
      p.b = backend(i);
      p.at = Clock::now();
      if (done(p.b)) {
        p.done = true;
        return p;
      }
      if (p.at > deadline) return p;
      std::this_thread::sleep_for(10ms);
    }
  }

  static bool probes_at_least(const Json& b, uint64_t n) {
    return b["probe"].is_object() && b["probe"]["probes"].get<uint64_t>() >= n;
  }

  // ---- verdicts ----

  // ikelb's verdict on a gateway: "alive" (healthy, the IKE daemon answered the probe),
  // "no_proposal_chosen" (the daemon answered but refuses the probe), "dead" (down: no IKE
  // answer), or a description of anything else.
  static std::string ikelb_verdict(const Json& b) {
    const Json& p = b["probe"];
    if (!p.is_object()) return "no probe: " + b.dump();
    const std::string result = p["last_result"];
    if (result == "no_proposal_chosen") return result;
    if ((result == "invalid_ke" || result == "ike_response") && b["healthy"] == true &&
        b["state"] == "active")
      return "alive";
    if ((result == "timeout" || result.starts_with("icmp: ") || result.starts_with("malformed")) &&
        b["healthy"] == false && b["state"] == "down")
      return "dead";
    return "unexpected: " + b.dump();
  }

  // ike-scan --ikev2 from the lb namespace (--sport=0: an ephemeral source port, like the
  // prober's) against gw<i> for each i; its verdict per gateway, in ikelb_verdict's terms.
  std::map<int, std::string> ike_scan(const std::vector<int>& gws) {
    Argv argv = {"ike-scan", "--ikev2", "--sport=0", "--retry=2", "--timeout=300"};
    for (int i : gws) argv.push_back(gw_address(i));
    RunResult r = run(in_ns("lb", argv), 20s);
    if (r.exit_code != 0) throw std::runtime_error("ike-scan failed: " + r.output);
    std::map<int, std::string> out;
    for (int i : gws) {
      std::string verdict = "dead";  // no line for this host: no answer
      std::istringstream in(r.output);
      std::string line;
      while (std::getline(in, line)) {
        if (!line.starts_with(gw_address(i) + "\t")) continue;
        if (line.find("IKEv2 SA_INIT Handshake returned") != std::string::npos ||
            line.find("Notify message 17 (INVALID_KE_PAYLOAD)") != std::string::npos)
          verdict = "alive";
        else if (line.find("Notify message 14 (NO_PROPOSAL_CHOSEN)") != std::string::npos)
          verdict = "no_proposal_chosen";
        else if (line.find("Unexpected IKE payload returned") != std::string::npos)
          verdict = "dead";  // garbage: ike-scan counts it neither as handshake nor as notify
        else
          verdict = "unexpected: " + line;
      }
      out[i] = verdict;
    }
    scan_output_ = r.output;
    return out;
  }

  // ike-scan and ikelb agree on every gateway of `gws`.
  void expect_ike_scan_agrees(const std::vector<int>& gws) {
    auto scan = ike_scan(gws);
    for (int i : gws) {
      Json b = backend(i);
      EXPECT_EQ(scan[i], ikelb_verdict(b)) << gw(i) << ": ike-scan and ikelb disagree\nike-scan:\n"
                                           << scan_output_ << "ikelbctl: " << b.dump();
    }
  }

  std::string scan_output_;
  std::vector<int> responders_;
};

// gw1: stateless probes, charon prefers ECP256. gw2: full probes, charon prefers X25519.
TEST_F(NetnsProbeTest, BothModesReportHealthy) {
  add_gateway(1);
  add_gateway(2);
  start_charon(1, kPreferEcp256);
  start_charon(2, kPreferX25519);
  // Full mode: the config's minimum interval is 12 s, so only the first probe is looked at.
  write_config({{"stateless", "203.0.113.10", stateless(300, 200, 2, 3), {1}},
                {"full",
                 "203.0.113.11",
                 {{"mode", "full"}, {"interval_ms", 12000}, {"timeout_ms", 1000}, {"jitter_ms", 0}},
                 {2}}});
  start_agent();

  Polled s = wait_for(
      1, [](const Json& b) { return b["probe"]["consecutive_ok"].get<int>() >= 2; }, 5s);
  ASSERT_TRUE(s.done) << s.b.dump();
  EXPECT_EQ(s.b["state"], "active") << s.b.dump();
  EXPECT_EQ(s.b["healthy"], true);
  EXPECT_EQ(s.b["probe"]["mode"], "stateless");
  EXPECT_EQ(s.b["probe"]["last_result"], "invalid_ke");
  EXPECT_EQ(s.b["probe"]["preferred_group"], 19) << "the gateway's first proposal is ECP256";
  EXPECT_EQ(s.b["probe"]["warning"], "");
  EXPECT_EQ(s.b["probe"]["consecutive_fail"], 0);
  EXPECT_TRUE(s.b["probe"]["rtt_ms"].is_number()) << s.b.dump();

  Polled f = wait_for(
      2, [](const Json& b) { return b["probe"]["last_result"] != ""; }, 5s);
  ASSERT_TRUE(f.done) << f.b.dump();
  EXPECT_EQ(f.b["state"], "active") << f.b.dump();
  EXPECT_EQ(f.b["healthy"], true);
  EXPECT_EQ(f.b["probe"]["mode"], "full");
  EXPECT_EQ(f.b["probe"]["last_result"], "ike_response") << f.b.dump();
  EXPECT_EQ(f.b["probe"]["preferred_group"], 31);
  EXPECT_EQ(f.b["probe"]["probes"], 1);
  EXPECT_EQ(f.b["probe"]["consecutive_ok"], 1);

  // A full probe costs the gateway one half-open IKE_SA; stateless probes cost nothing.
  EXPECT_EQ(half_open(1), 0);
  EXPECT_EQ(half_open(2), 1);
  expect_ike_scan_agrees({1, 2});
}

TEST_F(NetnsProbeTest, StatelessLeavesNoHalfOpenSas) {
  add_gateway(1);
  add_gateway(2);
  start_charon(1, kPreferEcp256);
  start_charon(2, kPreferX25519);
  // 100 ms is the shortest interval the config allows: 60 probes in about 6 s.
  write_config({{"vpn", "203.0.113.10", stateless(100, 90, 2, 3), {1, 2}}});
  start_agent();
  const auto t0 = Clock::now();
  for (int i : {1, 2}) {
    Polled p = wait_for(
        i, [](const Json& b) { return probes_at_least(b, 61); }, 15s);
    ASSERT_TRUE(p.done) << gw(i) << ": " << p.b.dump();
  }
  std::fprintf(stderr, "61 probes per gateway after %ld ms\n", ms_between(t0, Clock::now()));
  for (int i : {1, 2}) {
    Json b = backend(i);
    const Json& p = b["probe"];
    std::fprintf(stderr, "%s: probes=%lu retransmits=%lu consecutive_ok=%lu rtt_ms=%s\n",
                 gw(i).c_str(), p["probes"].get<uint64_t>(), p["retransmits"].get<uint64_t>(),
                 p["consecutive_ok"].get<uint64_t>(), p["rtt_ms"].dump().c_str());
    EXPECT_EQ(b["state"], "active") << b.dump();
    EXPECT_EQ(p["last_result"], "invalid_ke") << b.dump();
    EXPECT_EQ(p["consecutive_fail"], 0) << b.dump();
    EXPECT_GE(p["consecutive_ok"].get<uint64_t>(), 60u) << b.dump();
    EXPECT_EQ(p["preferred_group"], i == 1 ? 19 : 31) << b.dump();
  }
  // gw1 answered every probe with INVALID_KE_PAYLOAD: no IKE_SA at all. gw2 accepted the first
  // probe's X25519 KE (that is how its preference is learned) and holds exactly that one
  // half-open SA (for 30 s); the following 60 carried a MODP2048 KE and cost nothing.
  EXPECT_EQ(half_open(1), 0);
  EXPECT_EQ(settled_ike_sas(1, 0), 0);
  EXPECT_EQ(half_open(2), 1);
  EXPECT_EQ(settled_ike_sas(2, 1), 1);
}

TEST_F(NetnsProbeTest, StoppedCharonIsDownInTimeAndBackAfterRise) {
  constexpr int kInterval = 300, kTimeout = 200, kRise = 2, kFall = 3, kMargin = 300;
  add_gateway(1);
  start_charon(1, kPreferEcp256);
  write_config({{"vpn", "203.0.113.10", stateless(kInterval, kTimeout, kRise, kFall), {1}}});
  start_agent();
  Polled up = wait_for(
      1, [](const Json& b) { return b["probe"]["consecutive_ok"].get<int>() >= kRise; }, 5s);
  ASSERT_TRUE(up.done) << up.b.dump();
  ASSERT_EQ(up.b["state"], "active");

  // Down: the first failed probe is sent at most one interval after the stop, `fall` of them
  // take (fall - 1) intervals more, and each fails within `timeout` (here at once: the closed
  // port answers ICMP port unreachable). Measured from the moment the stop was asked for.
  const auto stop_at = Clock::now();
  stop_charon(1);
  const auto stopped_at = Clock::now();
  Polled down = wait_for(
      1, [](const Json& b) { return b["state"] == "down"; }, 5s);
  ASSERT_TRUE(down.done) << down.b.dump();
  const long detect_ms = ms_between(stop_at, down.at);
  std::fprintf(stderr, "down %ld ms after the stop was asked (%ld ms after charon was gone)\n",
               detect_ms, ms_between(stopped_at, down.at));
  EXPECT_LE(detect_ms, kInterval * kFall + kTimeout + kMargin) << down.b.dump();
  EXPECT_EQ(down.b["healthy"], false);
  EXPECT_EQ(down.b["probe"]["last_result"], "icmp: Connection refused") << down.b.dump();
  EXPECT_GE(down.b["probe"]["consecutive_fail"], kFall) << down.b.dump();
  EXPECT_EQ(down.b["detail"], "down (probe: 3 probes failed: icmp: Connection refused)")
      << down.b.dump();
  expect_ike_scan_agrees({1});

  // Back: `rise` answers in a row, the first within one interval (plus a probe that may still
  // be waiting for its timeout), then (rise - 1) intervals. Measured from charon answering
  // (sw_gateway_start returns once its connection is loaded).
  const auto restart_at = Clock::now();
  start_charon(1, kPreferEcp256);
  const auto started_at = Clock::now();
  Polled back = wait_for(
      1, [](const Json& b) { return b["state"] == "active"; }, 5s);
  ASSERT_TRUE(back.done) << back.b.dump();
  const long recover_ms = ms_between(started_at, back.at);
  std::fprintf(stderr, "active %ld ms after charon was up again (%ld ms after the restart began)\n",
               recover_ms, ms_between(restart_at, back.at));
  EXPECT_LE(recover_ms, kInterval * kRise + kTimeout + kMargin) << back.b.dump();
  EXPECT_EQ(back.b["healthy"], true);
  EXPECT_GE(back.b["probe"]["consecutive_ok"], kRise) << back.b.dump();
  // A charon whose connections are not loaded yet answers NO_PROPOSAL_CHOSEN, healthy by default
  // (as a warning): the rise may have counted those. Once loaded, within a probe, the answer is
  // the INVALID_KE_PAYLOAD of stateless mode again.
  Polled loaded = wait_for(
      1, [](const Json& b) { return b["probe"]["last_result"] == "invalid_ke"; }, 3s);
  EXPECT_TRUE(loaded.done) << loaded.b.dump();
  EXPECT_EQ(loaded.b["state"], "active") << loaded.b.dump();
  EXPECT_EQ(loaded.b["probe"]["preferred_group"], 19);
  EXPECT_EQ(half_open(1), 0);
  expect_ike_scan_agrees({1});
}

// Both gateways run charon with proposals the probe cannot match. gw1's virtual server takes
// NO_PROPOSAL_CHOSEN as alive (the default), gw2's does not.
TEST_F(NetnsProbeTest, MismatchedConfigIsNoProposalChosen) {
  add_gateway(1);
  add_gateway(2);
  start_charon(1, kNoOverlap);
  start_charon(2, kNoOverlap);
  Json strict = stateless(300, 200, 2, 3);
  strict["no_proposal_chosen_healthy"] = false;
  write_config({{"tolerant", "203.0.113.10", stateless(300, 200, 2, 3), {1}},
                {"strict", "203.0.113.11", strict, {2}}});
  start_agent();

  Polled t = wait_for(
      1, [](const Json& b) { return b["probe"]["consecutive_ok"].get<int>() >= 3; }, 5s);
  ASSERT_TRUE(t.done) << t.b.dump();
  EXPECT_EQ(t.b["state"], "active") << t.b.dump();
  EXPECT_EQ(t.b["healthy"], true);
  EXPECT_EQ(t.b["probe"]["last_result"], "no_proposal_chosen");
  EXPECT_NE(t.b["probe"]["warning"], "") << t.b.dump();
  EXPECT_NE(t.b["probe"]["warning"].get<std::string>().find("no_proposal_chosen"),
            std::string::npos)
      << t.b.dump();
  EXPECT_TRUE(t.b["probe"]["preferred_group"].is_null()) << t.b.dump();

  Polled s = wait_for(
      2, [](const Json& b) { return b["state"] == "down"; }, 5s);
  ASSERT_TRUE(s.done) << s.b.dump();
  EXPECT_EQ(s.b["healthy"], false);
  EXPECT_EQ(s.b["probe"]["last_result"], "no_proposal_chosen");
  EXPECT_NE(s.b["probe"]["warning"], "") << s.b.dump();
  EXPECT_EQ(s.b["detail"], "down (probe: 3 probes failed: no_proposal_chosen)") << s.b.dump();

  EXPECT_EQ(half_open(1), 0);
  EXPECT_EQ(half_open(2), 0);
  expect_ike_scan_agrees({1, 2});
}

// gw1 echoes "R" + datagram: nothing the prober can recognise as an answer to its probe (the
// SPIi does not match), so the probes time out. gw2 answers with the probe's SPIi and then
// garbage: an answer, but malformed.
TEST_F(NetnsProbeTest, GarbageResponderIsDown) {
  add_gateway(1);
  add_gateway(2);
  start_responder(1, {});
  start_responder(2, {"--ike-garbage", kGarbage});
  write_config({{"vpn", "203.0.113.10", stateless(300, 200, 2, 3), {1, 2}}});
  start_agent();

  for (int i : {1, 2}) {
    Polled p = wait_for(
        i, [](const Json& b) { return b["state"] == "down"; }, 5s);
    ASSERT_TRUE(p.done) << gw(i) << ": " << p.b.dump();
    EXPECT_EQ(p.b["healthy"], false) << p.b.dump();
    // Down after `fall` failures; gw2 is polled after gw1 went down, so it may have failed again.
    EXPECT_NE(p.b["detail"].get<std::string>().find("(probe: 3 probes failed: "), std::string::npos)
        << p.b.dump();
    EXPECT_GE(p.b["probe"]["consecutive_fail"], 3) << p.b.dump();
    EXPECT_EQ(p.b["probe"]["consecutive_ok"], 0) << p.b.dump();
    EXPECT_TRUE(p.b["probe"]["preferred_group"].is_null()) << p.b.dump();
    EXPECT_TRUE(p.b["probe"]["rtt_ms"].is_null()) << p.b.dump();
  }
  Json echo = backend(1), garbage = backend(2);
  EXPECT_EQ(echo["probe"]["last_result"], "timeout") << echo.dump();
  // Each timed-out probe was retransmitted once, at timeout / 2.
  EXPECT_GE(echo["probe"]["retransmits"].get<uint64_t>(), 3u) << echo.dump();
  EXPECT_TRUE(garbage["probe"]["last_result"].get<std::string>().starts_with("malformed"))
      << garbage.dump();
  EXPECT_EQ(garbage["probe"]["retransmits"], 0) << garbage.dump();
  expect_ike_scan_agrees({1, 2});
}

}  // namespace
}  // namespace ikelb::test
