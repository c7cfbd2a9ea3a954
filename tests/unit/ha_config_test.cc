// The high-availability config sections (config/ha_config.h): defaults, every field, and every
// refusal with its JSON path.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config.h"

namespace ikelb {
namespace {

std::string doc(const std::string& ha) {
  return R"({"interfaces": ["eth0"], "virtual_servers": [
      {"name": "vpn", "address": "203.0.113.10", "backends": [{"name": "gw1", "address": "10.0.0.11"}]},
      {"name": "vpn6", "address": "2001:db8:f::10", "backends": [{"name": "gw1", "address": "fd00::11"}]}])" +
         (ha.empty() ? "" : ", " + ha) + "}";
}

std::vector<std::string> errors(const std::string& ha) {
  ConfigResult r = parse_config(doc(ha));
  std::vector<std::string> out;
  for (const auto& e : r.errors) out.push_back(e.str());
  EXPECT_EQ(r.config.has_value(), out.empty());
  return out;
}

TEST(AnnounceConfig, AbsentByDefault) {
  ConfigResult r = parse_config(doc(""));
  ASSERT_TRUE(r.config);
  EXPECT_FALSE(r.config->announce);
}

TEST(AnnounceConfig, DefaultsAndEveryField) {
  ConfigResult r = parse_config(
      doc(R"("announce": {"virtual_servers": [{"name": "vpn", "protocol": "vip_vpn"}]})"));
  ASSERT_TRUE(r.config) << r.errors.at(0).str();
  const AnnounceConfig& a = *r.config->announce;
  EXPECT_EQ(a.bird_socket, "/run/bird/bird.ctl");
  EXPECT_EQ(a.interval_ms, 1000u);
  EXPECT_EQ(a.drain_file, "/var/lib/ikelb/node-drained");
  ASSERT_EQ(a.virtual_servers.size(), 1u);
  EXPECT_EQ(a.virtual_servers[0].name, "vpn");
  EXPECT_EQ(a.virtual_servers[0].protocol, "vip_vpn");
  EXPECT_EQ(a.virtual_servers[0].min_healthy_backends, 1u);

  r = parse_config(doc(R"("announce": {"bird_socket": "/tmp/b.ctl", "interval_ms": 250,
      "drain_file": "/tmp/drained", "virtual_servers": [
        {"name": "vpn", "protocol": "vip_vpn", "min_healthy_backends": 2},
        {"name": "vpn6", "protocol": "_v6", "min_healthy_backends": 1}]})"));
  ASSERT_TRUE(r.config) << r.errors.at(0).str();
  const AnnounceConfig& b = *r.config->announce;
  EXPECT_EQ(b.bird_socket, "/tmp/b.ctl");
  EXPECT_EQ(b.interval_ms, 250u);
  EXPECT_EQ(b.drain_file, "/tmp/drained");
  ASSERT_EQ(b.virtual_servers.size(), 2u);
  EXPECT_EQ(b.virtual_servers[0].min_healthy_backends, 2u);
  EXPECT_EQ(b.virtual_servers[1].protocol, "_v6");
}

TEST(AnnounceConfig, RefusalsNameThePath) {
  EXPECT_EQ(errors(R"("announce": {})"),
            std::vector<std::string>{"/announce: missing required key \"virtual_servers\""});
  EXPECT_EQ(errors(R"("announce": {"virtual_servers": {}, "bird": 1})"),
            (std::vector<std::string>{"/announce/virtual_servers: expected an array, got object",
                                      "/announce/bird: unknown key \"bird\""}));
  EXPECT_EQ(errors(R"("announce": {"bird_socket": "run/bird.ctl", "interval_ms": 10,
                     "virtual_servers": []})"),
            (std::vector<std::string>{
                "/announce/bird_socket: must be an absolute path, got \"run/bird.ctl\"",
                "/announce/interval_ms: must be between 100 and 60000, got 10"}));
  EXPECT_EQ(
      errors(R"("announce": {"virtual_servers": [
          {"name": "vpm", "protocol": "vip_vpn"},
          {"name": "vpn", "protocol": "vip vpn"},
          {"name": "vpn", "protocol": "1vip"},
          {"name": "vpn6", "protocol": "v6", "min_healthy_backends": 0, "extra": true},
          {"name": "vpn6", "protocol": "v6"}]})"),
      (std::vector<std::string>{
          "/announce/virtual_servers/0/name: \"vpm\" is not a virtual server of this config",
          "/announce/virtual_servers/1/protocol: \"vip vpn\" is not a bird protocol name (a "
          "letter or \"_\", then letters, digits or \"_\", at most 64)",
          "/announce/virtual_servers/2/name: \"vpn\" is listed twice",
          "/announce/virtual_servers/2/protocol: \"1vip\" is not a bird protocol name (a letter "
          "or \"_\", then letters, digits or \"_\", at most 64)",
          "/announce/virtual_servers/3/min_healthy_backends: must be between 1 and 4096, got 0",
          "/announce/virtual_servers/3/extra: unknown key \"extra\"",
          "/announce/virtual_servers/4/name: \"vpn6\" is listed twice",
          "/announce/virtual_servers/4/protocol: \"v6\" already carries another virtual server"}));
}

}  // namespace
}  // namespace ikelb

namespace ikelb {
namespace {

// The shipped node config names the protocols of deploy/ha/bird.conf.
TEST(AnnounceConfig, ShippedExampleMatchesTheBirdExample) {
  ConfigResult r = parse_config_file(std::string(IKELB_CONFIG_EXAMPLES) + "/ha-node.json");
  ASSERT_TRUE(r.config) << (r.errors.empty() ? "" : r.errors[0].str());
  ASSERT_TRUE(r.config->announce);
  std::ifstream in(std::string(IKELB_DEPLOY_DIR) + "/ha/bird.conf");
  std::stringstream bird;
  bird << in.rdbuf();
  ASSERT_FALSE(bird.str().empty());
  for (const auto& vs : r.config->announce->virtual_servers) {
    EXPECT_NE(bird.str().find("protocol static " + vs.protocol + " {"), std::string::npos)
        << vs.protocol;
    for (const auto& v : r.config->virtual_servers) {
      if (v.name != vs.name) continue;
      EXPECT_NE(bird.str().find("route " + v.address.str() + "/"), std::string::npos)
          << v.address.str();
    }
  }
  EXPECT_EQ(r.config->announce->bird_socket, "/run/bird/bird.ctl");  // Debian's bird2 default
}

// ---- sync

constexpr const char* kSync =
    R"("sync": {"node_id": 1, "listen": "10.255.1.2:7946", "peers": ["10.255.2.2:7946"],
                "key_file": "/etc/ikelb/sync.key")";

TEST(SyncConfig, AbsentByDefaultThenDefaults) {
  ConfigResult r = parse_config(doc(""));
  ASSERT_TRUE(r.config);
  EXPECT_FALSE(r.config->sync);
  r = parse_config(doc(std::string(kSync) + "}"));
  ASSERT_TRUE(r.config) << r.errors.at(0).str();
  const SyncConfig& s = *r.config->sync;
  EXPECT_EQ(s.node_id, 1u);
  EXPECT_EQ(s.listen, "10.255.1.2:7946");
  EXPECT_EQ(s.peers, std::vector<std::string>{"10.255.2.2:7946"});
  EXPECT_EQ(s.key_file, "/etc/ikelb/sync.key");
  EXPECT_EQ(s.interval_ms, 1000u);
  EXPECT_EQ(s.max_records_per_second, 50000u);
  EXPECT_EQ(s.queue_records, 100000u);
  EXPECT_TRUE(s.snapshot_on_join);
  EXPECT_EQ(s.snapshot_timeout_ms, 3000u);
}

TEST(SyncConfig, EveryField) {
  ConfigResult r = parse_config(doc(R"("sync": {"node_id": 4294967295, "listen": "[fd00::1]:99",
      "peers": ["[fd00::2]:99", "[fd00::1]:100", "10.0.0.3:99"], "key_file": "/k",
      "interval_ms": 200, "max_records_per_second": 10, "queue_records": 5,
      "snapshot_on_join": false, "snapshot_timeout_ms": 0})"));
  ASSERT_TRUE(r.config) << r.errors.at(0).str();
  const SyncConfig& s = *r.config->sync;
  EXPECT_EQ(s.node_id, 4294967295u);
  EXPECT_EQ(s.peers.size(), 3u);
  EXPECT_EQ(s.interval_ms, 200u);
  EXPECT_EQ(s.max_records_per_second, 10u);
  EXPECT_EQ(s.queue_records, 5u);
  EXPECT_FALSE(s.snapshot_on_join);
  EXPECT_EQ(s.snapshot_timeout_ms, 0u);
}

TEST(SyncConfig, RefusalsNameThePath) {
  EXPECT_EQ(
      errors(R"("sync": {})"),
      (std::vector<std::string>{
          "/sync: missing required key \"node_id\"", "/sync: missing required key \"listen\"",
          "/sync: missing required key \"peers\"", "/sync: missing required key \"key_file\""}));
  EXPECT_EQ(errors(R"("sync": {"node_id": 0, "listen": "10.0.0.1", "peers": [],
      "key_file": "k", "interval_ms": 5, "snapshot_on_join": 1, "extra": 1})"),
            (std::vector<std::string>{
                "/sync/node_id: must be between 1 and 4294967295, got 0",
                "/sync/listen: \"10.0.0.1\" is not \"address:port\" (IPv4 \"127.0.0.1:9712\" or "
                "IPv6 \"[::1]:9712\")",
                "/sync/peers: must list at least one peer",
                "/sync/key_file: must be an absolute path, got \"k\"",
                "/sync/interval_ms: must be between 10 and 60000, got 5",
                "/sync/snapshot_on_join: expected a boolean, got number",
                "/sync/extra: unknown key \"extra\""}));
  EXPECT_EQ(errors(R"("sync": {"node_id": 1, "listen": "10.0.0.1:7946", "key_file": "/k",
      "peers": ["10.0.0.1:7946", "10.0.0.2:7946", "10.0.0.2:7946", "10.0.0.3:0", "x"]})"),
            (std::vector<std::string>{
                "/sync/peers/0: \"10.0.0.1:7946\" is this node's own sync.listen",
                "/sync/peers/2: \"10.0.0.2:7946\" is listed twice",
                "/sync/peers/3: port in \"10.0.0.3:0\" must be between 1 and 65535",
                "/sync/peers/4: \"x\" is not \"address:port\" (IPv4 \"127.0.0.1:9712\" or IPv6 "
                "\"[::1]:9712\")"}));
  std::string many;
  for (int i = 0; i < 65; i++)
    many += std::string(i ? "," : "") + "\"10.1.0." + std::to_string(i) + ":1\"";
  std::vector<std::string> e = errors(R"("sync": {"node_id": 1, "listen": "10.0.0.1:7946",
      "key_file": "/k", "peers": [)" + many +
                                      "]}");
  EXPECT_EQ(e, std::vector<std::string>{"/sync/peers: at most 64 peers, got 65"});
}

TEST(SyncConfig, KeyFileNeedsThirtyTwoBytes) {
  const std::string path = ::testing::TempDir() + "/ikelb-sync-key";
  SyncConfig s;
  s.key_file = path + ".missing";
  auto r = read_sync_key(s);
  ASSERT_TRUE(std::holds_alternative<ConfigError>(r));
  EXPECT_EQ(std::get<ConfigError>(r).str(),
            "/sync/key_file: cannot read " + s.key_file + ": No such file or directory");
  std::ofstream(path, std::ios::binary) << std::string(31, 'k');
  s.key_file = path;
  r = read_sync_key(s);
  ASSERT_TRUE(std::holds_alternative<ConfigError>(r));
  EXPECT_NE(
      std::get<ConfigError>(r).str().find(path + " holds 31 bytes; the shared key must be at least "
                                                 "32 bytes"),
      std::string::npos)
      << std::get<ConfigError>(r).str();
  std::ofstream(path, std::ios::binary) << std::string(32, '\0');
  r = read_sync_key(s);
  ASSERT_TRUE(std::holds_alternative<std::vector<uint8_t>>(r));
  EXPECT_EQ(std::get<std::vector<uint8_t>>(r), std::vector<uint8_t>(32, 0));
}

}  // namespace
}  // namespace ikelb
