// The announce decision, the reconcile rounds against a fake bird, and bird's reply format (the
// replies below are bird 2.0.12's, captured from its control socket).
#include "announcer.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "bird_control.h"

namespace ikelb {
namespace {

// ---- bird's replies

BirdReply parse_one(const std::string& bytes) {
  BirdReplyParser p;
  p.feed(bytes);
  auto r = p.next();
  EXPECT_TRUE(r.has_value());
  EXPECT_FALSE(p.next().has_value());
  return r.value_or(BirdReply{});
}

TEST(BirdReply, ShowProtocolsInPiecesAndStates) {
  const std::string show =
      "2002-Name       Proto      Table      State  Since         Info\n"
      "1002-vip_vpn    Static     master4    up     15:21:22.885  \n"
      "0000 \n";
  BirdReplyParser p;
  // Arrives split anywhere, even inside a code.
  p.feed(show.substr(0, 3));
  EXPECT_FALSE(p.next());
  p.feed(show.substr(3, 70));
  EXPECT_FALSE(p.next());
  p.feed(show.substr(73) + "0001 BIRD 2.0.12 ready.\n");
  auto r = p.next();
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(r->final_code, 0);
  EXPECT_EQ(protocol_state(*r, "vip_vpn"), "up");
  EXPECT_EQ(protocol_state(*r, "vip"), std::nullopt);  // a whole name, not a prefix
  auto hello = p.next();
  ASSERT_TRUE(hello);
  EXPECT_EQ(hello->final_code, 1);

  BirdReply down = parse_one(
      "2002-Name       Proto      Table      State  Since         Info\n"
      "1002-vip_vpn    Static     master4    down   15:21:21.215  \n0000 \n");
  EXPECT_EQ(protocol_state(down, "vip_vpn"), "down");
}

TEST(BirdReply, ContinuationLinesErrorsAndGarbage) {
  BirdReply all = parse_one(
      "1002-vip_vpn    Static     master4    up     15:21:22.885  \n"
      "1006-  Channel ipv4\n     State:          UP\n \n0000 \n");
  ASSERT_EQ(all.lines.size(), 5u);
  EXPECT_EQ(all.lines[2].code, 1006);
  EXPECT_EQ(all.lines[2].text, "    State:          UP");

  BirdReply err = parse_one(
      "9001 syntax error, unexpected CF_SYM_UNDEFINED, expecting CF_SYM_KNOWN or TEXT or ALL\n");
  EXPECT_FALSE(err.ok());
  EXPECT_EQ(err.error_text(),
            "syntax error, unexpected CF_SYM_UNDEFINED, expecting CF_SYM_KNOWN or TEXT or ALL");
  EXPECT_TRUE(parse_one("0011-vip_vpn: enabled\n0000 \n").ok());

  BirdReplyParser p;
  EXPECT_THROW(p.feed("HTTP/1.1 200 OK\n"), BirdError);
  EXPECT_THROW(p.feed(" continuation without a reply\n"), BirdError);
}

// ---- the decision

TEST(DecideAnnounce, EveryConditionAndItsCause) {
  NodeFacts ok{.attached = true, .drained = false, .held = ""};
  AnnounceInput vs{.vs = "vpn",
                   .protocol = "vip_vpn",
                   .min_healthy_backends = 2,
                   .programmed = true,
                   .in_table = 2};
  EXPECT_TRUE(decide_announce(ok, vs).announce);
  EXPECT_EQ(decide_announce(ok, vs).cause, "2 backends in the table (at least 2 needed)");
  vs.in_table = 1;
  EXPECT_FALSE(decide_announce(ok, vs).announce);
  EXPECT_EQ(decide_announce(ok, vs).cause, "1 backends in the table (at least 2 needed)");
  vs.in_table = 3;
  vs.programmed = false;
  EXPECT_FALSE(decide_announce(ok, vs).announce);
  vs.programmed = true;
  EXPECT_FALSE(decide_announce({.attached = false, .drained = false, .held = ""}, vs).announce);
  NodeFacts drained{.attached = true, .drained = true, .held = ""};
  EXPECT_FALSE(decide_announce(drained, vs).announce);
  EXPECT_EQ(decide_announce(drained, vs).cause, "node drained by the operator");
  NodeFacts held{.attached = true, .drained = false, .held = "waiting for the sync snapshot"};
  EXPECT_FALSE(decide_announce(held, vs).announce);
  EXPECT_EQ(decide_announce(held, vs).cause, "waiting for the sync snapshot");
  EXPECT_EQ(not_ready_cause(held, {vs}), "vpn: waiting for the sync snapshot");
}

// ---- reconcile against a fake bird

struct FakeBird : BirdControl {
  std::map<std::string, bool> enabled;  // protocols bird knows
  bool down = false;
  std::vector<std::string> commands;
  std::string state(const std::string& p) override {
    if (down) throw BirdError("bird control socket: Connection refused");
    commands.push_back("show " + p);
    auto it = enabled.find(p);
    if (it == enabled.end()) throw BirdError("bird has no protocol \"" + p + "\"");
    return it->second ? "up" : "down";
  }
  void set_enabled(const std::string& p, bool on) override {
    if (down) throw BirdError("bird control socket: Connection refused");
    commands.push_back((on ? "enable " : "disable ") + p);
    enabled.at(p) = on;
  }
};

struct AnnouncerTest : ::testing::Test {
  FakeBird bird;
  Announcer a{bird};
  NodeFacts node{.attached = true, .drained = false, .held = ""};
  std::vector<AnnounceInput> inputs{
      {.vs = "vpn", .protocol = "vip_vpn", .programmed = true, .in_table = 3},
      {.vs = "vpn6", .protocol = "vip_vpn6", .programmed = true, .in_table = 0}};
  void SetUp() override { bird.enabled = {{"vip_vpn", false}, {"vip_vpn6", false}}; }
  const AnnounceStatus& st(const std::string& vs) {
    for (const auto& s : a.status())
      if (s.vs == vs) return s;
    throw std::runtime_error("no status for " + vs);
  }
};

TEST_F(AnnouncerTest, AnnouncesWhatCanBeServedAndActsOnlyOnADifference) {
  a.reconcile(node, inputs);
  EXPECT_TRUE(bird.enabled["vip_vpn"]);
  EXPECT_FALSE(bird.enabled["vip_vpn6"]);  // no backend in its table
  EXPECT_EQ(st("vpn").announced, true);
  EXPECT_EQ(st("vpn").announces, 1u);
  EXPECT_EQ(st("vpn6").announced, false);
  EXPECT_EQ(st("vpn6").cause, "0 backends in the table (at least 1 needed)");
  bird.commands.clear();
  a.reconcile(node, inputs);  // nothing differs: only reads
  EXPECT_EQ(bird.commands, (std::vector<std::string>{"show vip_vpn", "show vip_vpn6"}));
  EXPECT_EQ(st("vpn").announces, 1u);
}

TEST_F(AnnouncerTest, DrainWithdrawsEverythingAndUndrainAnnouncesAgain) {
  a.reconcile(node, inputs);
  node.drained = true;
  a.reconcile(node, inputs);
  EXPECT_FALSE(bird.enabled["vip_vpn"]);
  EXPECT_EQ(st("vpn").withdraws, 1u);
  EXPECT_EQ(st("vpn").cause, "node drained by the operator");
  node.drained = false;
  a.reconcile(node, inputs);
  EXPECT_TRUE(bird.enabled["vip_vpn"]);
  EXPECT_EQ(st("vpn").announces, 2u);
}

TEST_F(AnnouncerTest, RepairsAChangeMadeBehindItsBack) {
  a.reconcile(node, inputs);
  bird.enabled["vip_vpn"] = false;  // someone ran `birdc disable vip_vpn`, or bird restarted
  bird.enabled["vip_vpn6"] = true;  // or enabled what cannot be served
  a.reconcile(node, inputs);
  EXPECT_TRUE(bird.enabled["vip_vpn"]);
  EXPECT_FALSE(bird.enabled["vip_vpn6"]);
  EXPECT_EQ(st("vpn6").withdraws, 1u);
}

TEST_F(AnnouncerTest, BirdDownOrUnknownProtocolIsCountedAndRecovered) {
  bird.down = true;
  a.reconcile(node, inputs);
  a.reconcile(node, inputs);
  EXPECT_EQ(a.errors(), 4u);
  EXPECT_EQ(st("vpn").announced, std::nullopt);
  EXPECT_EQ(st("vpn").last_error, "bird control socket: Connection refused");
  bird.down = false;
  a.reconcile(node, inputs);
  EXPECT_TRUE(bird.enabled["vip_vpn"]);
  EXPECT_EQ(st("vpn").last_error, "");
  EXPECT_EQ(st("vpn").announced, true);

  bird.enabled.erase("vip_vpn6");
  a.reconcile(node, inputs);
  EXPECT_EQ(st("vpn6").last_error, "bird has no protocol \"vip_vpn6\"");
  EXPECT_EQ(a.errors(), 5u);
  EXPECT_EQ(st("vpn").announced, true);  // one broken protocol does not stop the others
}

TEST_F(AnnouncerTest, WithdrawAllBeforeTeardownAndForgettingRemovedServers) {
  a.reconcile(node, inputs);
  EXPECT_TRUE(a.withdraw_all(inputs, "teardown").empty());
  EXPECT_FALSE(bird.enabled["vip_vpn"]);
  EXPECT_EQ(st("vpn").cause, "teardown");
  bird.down = true;
  EXPECT_EQ(a.withdraw_all(inputs, "teardown").size(), 2u);
  a.reconcile(node, {inputs[0]});
  EXPECT_EQ(a.status().size(), 1u);
}

}  // namespace
}  // namespace ikelb
