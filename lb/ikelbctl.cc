// ikelbctl: the ikelbd admin CLI (HTTP/JSON over the agent's unix socket).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "admin_http.h"
#include "ctl_format.h"
#include "import_cli.h"
#include "spi_config.h"

namespace {

// Complete enough to be the man page (help2man builds ikelbctl.8 from it).
constexpr const char* kUsage =
    "Usage: ikelbctl [--socket PATH] [--json] COMMAND\n"
    "The admin CLI of ikelbd (HTTP/JSON over the agent's unix socket).\n"
    "\n"
    "Options:\n"
    "  --socket PATH       the agent's admin socket (default /run/ikelb/ikelb.sock, the\n"
    "                      config's admin.socket; mode 0660)\n"
    "  --json              print the agent's JSON reply instead of text\n"
    "  --help              this text\n"
    "  --version           the version\n"
    "\n"
    "Commands:\n"
    "  status              agent, interfaces, virtual servers, affinity table\n"
    "  backends            every backend: state, pinned clients, last change\n"
    "  drain NAME          no new clients; pinned clients stay (NAME or VS/NAME)\n"
    "  undrain NAME        take new clients again\n"
    "  disable NAME        no traffic at all; pinned clients move to other backends\n"
    "  enable NAME         undo disable\n"
    "  node                this node: drained, ready, VIP announcements in bird\n"
    "  node ready          exit 0 if this node can serve every virtual server, else 1\n"
    "  node drain          withdraw this node's VIPs from the router; forwarding continues\n"
    "  node undrain        announce them again\n"
    "  reload              re-read the config file (rejected configs change nothing)\n"
    "  teardown            detach XDP, remove all pinned state (affinity too), stop ikelbd\n"
    "  spi-config NAME [--virtual-server VS] [--config FILE] [--json]\n"
    "                      offline: the strongswan.conf lines (charon.spi_mask, spi_label,\n"
    "                      spi_min, spi_max) that make gateway NAME (or VS/NAME) put its\n"
    "                      spi_id into the SPIs it allocates, from the config FILE (default\n"
    "                      /etc/ikelb/ikelb.json); its virtual server needs spi_routing.labels\n"
    "\n"
    "Operator states (drain, disable) survive reloads and restarts of ikelbd.\n"
    "\n";
constexpr const char* kExitStatus =
    "Exit status: 0 ok, 1 refused by ikelbd (import: refused, problems listed), 2 usage,\n"
    "3 ikelbd unreachable.\n";

int usage(const std::string& why);

// `ikelbctl spi-config`: offline, reads the config file.
int spi_config_main(const std::vector<std::string>& args, bool json) {
  std::string file = "/etc/ikelb/ikelb.json", vs, name;
  for (size_t i = 0; i < args.size(); i++) {
    const std::string& a = args[i];
    if ((a == "--config" || a == "--virtual-server") && i + 1 < args.size())
      (a == "--config" ? file : vs) = args[++i];
    else if (a.starts_with("--config="))
      file = a.substr(9);
    else if (a.starts_with("--virtual-server="))
      vs = a.substr(17);
    else if (a == "--json")
      json = true;
    else if (a.starts_with("-") || !name.empty())
      return usage("spi-config: unexpected " + a);
    else
      name = a;
  }
  if (name.empty()) return usage("spi-config: no gateway NAME");
  ikelb::ConfigResult r = ikelb::parse_config_file(file);
  if (!r.config) {
    std::fprintf(stderr, "ikelbctl: %s: invalid config\n", file.c_str());
    for (const auto& e : r.errors) std::fprintf(stderr, "  %s\n", e.str().c_str());
    return 1;
  }
  ikelb::GatewaySpiResult g = ikelb::gateway_spi_config(*r.config, name, vs);
  if (!g.gateway) {
    std::fprintf(stderr, "ikelbctl: spi-config: %s\n", g.error.c_str());
    return 1;
  }
  std::fputs(json ? (g.gateway->to_json().dump(2) + "\n").c_str() : g.gateway->text().c_str(),
             stdout);
  return 0;
}

int usage(const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "ikelbctl: %s\n", why.c_str());
  std::fputs(kUsage, stderr);
  std::fputs(ikelb::appliance::kImportUsage, stderr);
  std::fputs(kExitStatus, stderr);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket = "/run/ikelb/ikelb.sock";
  bool json = false;
  std::vector<std::string> words;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--socket" && i + 1 < argc)
      socket = argv[++i];
    else if (a.starts_with("--socket="))
      socket = a.substr(9);
    else if (a == "--json")
      json = true;
    else if (a == "-h" || a == "--help")
      return std::fputs(kUsage, stdout), std::fputs(ikelb::appliance::kImportUsage, stdout),
             std::fputs(kExitStatus, stdout), 0;
    else if (a == "--version")
      return std::printf("ikelbctl %s\n", IKELB_VERSION), 0;
    else if (a == "spi-config" && words.empty())  // offline; its own options follow
      return spi_config_main(std::vector<std::string>(argv + i + 1, argv + argc), json);
    else if (a == "import" && words.empty())  // offline; its own options follow
      return ikelb::appliance::import_main(std::vector<std::string>(argv + i + 1, argv + argc));
    else if (a.starts_with("--"))
      return usage("unknown option " + a);
    else
      words.push_back(a);
  }
  if (words.empty()) return usage("no command");
  const std::string& cmd = words[0];
  std::string method = "GET", target;
  if ((cmd == "status" || cmd == "backends") && words.size() == 1) {
    target = "/v1/" + cmd;
  } else if (cmd == "node" && (words.size() == 1 || words[1] == "ready") && words.size() <= 2) {
    target = "/v1/node";
  } else if (cmd == "node" && words.size() == 2) {
    method = "POST";
    target = "/v1/node/" + words[1];
  } else if ((cmd == "reload" || cmd == "teardown") && words.size() == 1) {
    method = "POST";
    target = "/v1/" + cmd;
  } else if ((cmd == "drain" || cmd == "undrain" || cmd == "disable" || cmd == "enable") &&
             words.size() == 2) {
    method = "POST";
    target = "/v1/backends/" + words[1] + "/" + cmd;
  } else {
    return usage("bad command line");
  }

  ikelb::AdminReply reply;
  try {
    reply = ikelb::admin_call(socket, method, target);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ikelbctl: %s\n", e.what());
    return 3;
  }
  const bool ready_check = cmd == "node" && words.size() == 2 && words[1] == "ready";
  if (json) {
    std::printf("%s\n", reply.body.dump(2).c_str());
    if (ready_check && reply.status < 300) return reply.body.value("ready", false) ? 0 : 1;
    return reply.status < 300 ? 0 : 1;
  }
  if (reply.status >= 300) {
    std::fprintf(stderr, "ikelbctl: %s\n", reply.body.value("error", std::string("error")).c_str());
    for (const auto& e : reply.body.value("errors", nlohmann::json::array()))
      std::fprintf(stderr, "  %s\n", e.get<std::string>().c_str());
    return 1;
  }
  if (ready_check) {
    bool ready = reply.body.value("ready", false);
    std::printf("%s\n",
                ready
                    ? "ready"
                    : ("not ready: " + reply.body.value("not_ready_cause", std::string())).c_str());
    return ready ? 0 : 1;
  }
  if (cmd == "status")
    std::fputs(ikelb::format_status(reply.body).c_str(), stdout);
  else if (cmd == "node" && words.size() == 1)
    std::fputs(ikelb::format_node(reply.body).c_str(), stdout);
  else if (cmd == "backends")
    std::fputs(ikelb::format_backends(reply.body).c_str(), stdout);
  else
    std::printf("%s\n", reply.body.value("result", std::string("ok")).c_str());
  return 0;
}
