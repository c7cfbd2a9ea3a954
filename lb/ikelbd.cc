// ikelbd: the ikelb agent.
//   ikelbd --config FILE            run (attach, adopt pinned state, serve the admin API)
//   ikelbd --config FILE --watch-config   the same, and reload whenever FILE's content changes
//   ikelbd --config FILE --teardown-on-stop   the same, but SIGTERM/SIGINT detach and unpin
//   ikelbd --config FILE --check    validate FILE: every error with its JSON path, or a summary
//   ikelbd --config FILE --teardown detach XDP and remove every pin (the agent must be stopped)
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "admin_http.h"
#include "agent.h"
#include "bird_control.h"
#include "capabilities.h"
#include "config.h"
#include "datapath.h"
#include "log.h"

namespace {

// Complete enough to be the man page (help2man builds ikelbd.8 from it).
constexpr const char* kHelp =
    "Usage: ikelbd --config FILE [--watch-config] [--teardown-on-stop]\n"
    "       ikelbd --config FILE --check | --teardown | --mount-bpffs\n"
    "The ikelb agent: attaches the XDP load balancer for IKEv2/IPsec gateway pools to the\n"
    "configured interfaces, writes its tables, probes the gateways with IKE_SA_INIT and serves\n"
    "the admin API (ikelbctl) and Prometheus metrics.\n"
    "\n"
    "Options:\n"
    "  --config FILE   the JSON configuration (keys: config/README.md; Debian package:\n"
    "                  /etc/ikelb/ikelb.json, examples in /usr/share/doc/ikelb/examples)\n"
    "  --check         validate FILE and exit: a summary, or every error with its JSON path\n"
    "  --teardown      detach XDP from every interface and remove the pinned state under the\n"
    "                  config's bpffs directory (affinity table included), then exit; refused\n"
    "                  while an agent answers on the admin socket (use `ikelbctl teardown`)\n"
    "  --mount-bpffs   mount a bpf filesystem on the parent of the config's bpffs directory\n"
    "                  unless it is on one already, then exit (needs CAP_SYS_ADMIN; the\n"
    "                  systemd unit runs it privileged before the agent, which never mounts)\n"
    "  --watch-config  reload whenever the content of FILE changes (also through a symlink\n"
    "                  swap, as in a Kubernetes ConfigMap volume)\n"
    "  --teardown-on-stop  on SIGTERM/SIGINT, detach XDP and remove the pinned state instead of\n"
    "                  leaving forwarding (the last run before removal)\n"
    "  --help          this text\n"
    "  --version       the version\n"
    "\n"
    "Running:\n"
    "  Maps and XDP links are pinned under the config's bpffs directory (default\n"
    "  /sys/fs/bpf/ikelb), which must be on a mounted bpf filesystem (--mount-bpffs). A\n"
    "  restarted ikelbd adopts the pinned state: forwarding and affinity survive.\n"
    "  SIGHUP       reload the config file; a rejected config changes nothing\n"
    "  SIGTERM/INT  stop; XDP stays attached and forwarding (only a teardown detaches)\n"
    "  NOTIFY_SOCKET  if set (systemd Type=notify), ikelbd sends READY=1 once XDP is\n"
    "               attached and the tables are written, RELOADING=1 and READY=1 around a\n"
    "               reload, STOPPING=1 when it stops\n"
    "  Logs go to stderr.\n"
    "\n"
    "Capabilities: CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON, nothing else (the systemd unit grants\n"
    "exactly these). ikelbd names a missing one at start-up.\n"
    "\n"
    "Exit status: 0 ok (--check: valid), 1 run-time failure, 2 invalid config or usage.\n";

int usage(const char* why) {
  std::fprintf(stderr, "ikelbd: %s\n%s", why, kHelp);
  return 2;
}

// One connected probe socket per backend: 1,000 backends need ~1,030 descriptors, more than the
// usual soft limit of 1024 (systemd's default for services). Raise the soft limit to the hard one.
void raise_open_file_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check = false, teardown = false, mount_bpffs = false, watch = false,
       teardown_on_stop = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a.starts_with("--config=")) {
      config_path = a.substr(9);
    } else if (a == "--check") {
      check = true;
    } else if (a == "--mount-bpffs") {
      mount_bpffs = true;
    } else if (a == "--teardown") {
      teardown = true;
    } else if (a == "--watch-config") {
      watch = true;
    } else if (a == "--teardown-on-stop") {
      teardown_on_stop = true;
    } else if (a == "--help" || a == "-h") {
      std::fputs(kHelp, stdout);
      return 0;
    } else if (a == "--version") {
      std::printf("ikelbd %s\n", IKELB_VERSION);
      return 0;
    } else {
      return usage(("unknown argument \"" + a + "\"").c_str());
    }
  }
  if (config_path.empty()) return usage("--config FILE is required");
  if (check + teardown + mount_bpffs > 1)
    return usage("--check, --teardown and --mount-bpffs exclude each other");
  if ((watch || teardown_on_stop) && (check || teardown || mount_bpffs))
    return usage("--watch-config and --teardown-on-stop are for running the agent");

  ikelb::ConfigResult result = ikelb::parse_config_file(config_path);
  if (!result.config) {
    for (const auto& e : result.errors)
      std::fprintf(stderr, "%s: %s\n", config_path.c_str(), e.str().c_str());
    std::fprintf(stderr, "%s: %zu error%s\n", config_path.c_str(), result.errors.size(),
                 result.errors.size() == 1 ? "" : "s");
    return 2;
  }
  if (check) {
    std::printf("%s: ok: %s\n", config_path.c_str(), ikelb::summary(*result.config).c_str());
    return 0;
  }
  try {
    if (mount_bpffs) {
      std::printf("%s\n", ikelb::Datapath::mount_bpffs(result.config->bpffs).c_str());
      return 0;
    }
    if (teardown) {
      try {
        ikelb::admin_call(result.config->admin_socket, "GET", "/v1/status", nullptr,
                          std::chrono::seconds(2));
        std::fprintf(stderr, "ikelbd: an agent is running on %s; use `ikelbctl teardown`\n",
                     result.config->admin_socket.c_str());
        return 1;
      } catch (const std::exception&) {
        // Nobody answers: safe to tear down here.
      }
      // Withdraw before forwarding stops (a crashed agent left its announcements in place).
      if (const auto& a = result.config->announce) {
        ikelb::BirdSocket bird(a->bird_socket);
        for (const auto& vs : a->virtual_servers) try {
            bird.set_enabled(vs.protocol, false);
            std::printf("withdrew %s (bird protocol %s)\n", vs.name.c_str(), vs.protocol.c_str());
          } catch (const std::exception& e) {
            std::fprintf(stderr, "ikelbd: withdraw %s: %s\n", vs.name.c_str(), e.what());
          }
      }
      auto removed = ikelb::Datapath::teardown(result.config->bpffs);
      std::printf("removed %zu pinned objects under %s\n", removed.size(),
                  result.config->bpffs.c_str());
      return 0;
    }
    raise_open_file_limit();
    return ikelb::run_agent(
        {.config_path = config_path, .watch_config = watch, .teardown_on_stop = teardown_on_stop});
  } catch (const std::exception& e) {
    ikelb::log_error(e.what());
    // The kernel only says EPERM; name the capability that is missing.
    if (std::string caps = ikelb::capability_diagnosis(); !caps.empty() && !mount_bpffs)
      ikelb::log_error(caps);
    return 1;
  }
}
