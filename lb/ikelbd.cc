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
#include "config.h"
#include "datapath.h"
#include "log.h"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: ikelbd --config FILE [--watch-config] [--teardown-on-stop]\n"
               "       ikelbd --config FILE --check | --teardown\n"
               "  --watch-config  reload whenever the content of FILE changes (also through a\n"
               "                  symlink swap, as in a Kubernetes ConfigMap volume)\n"
               "  --teardown-on-stop  on SIGTERM/SIGINT, detach XDP and remove the pinned state\n"
               "                  instead of leaving forwarding (the last run before removal)\n"
               "  --check     validate the config and exit (0 valid, 2 invalid)\n"
               "  --teardown  detach XDP from every interface and remove the pinned state\n"
               "              (affinity included); use `ikelbctl teardown` while ikelbd runs\n");
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
  bool check = false, teardown = false, watch = false, teardown_on_stop = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a.starts_with("--config=")) {
      config_path = a.substr(9);
    } else if (a == "--check") {
      check = true;
    } else if (a == "--teardown") {
      teardown = true;
    } else if (a == "--watch-config") {
      watch = true;
    } else if (a == "--teardown-on-stop") {
      teardown_on_stop = true;
    } else if (a == "--version") {
      std::printf("ikelbd %s\n", IKELB_VERSION);
      return 0;
    } else {
      std::fprintf(stderr, "ikelbd: unknown argument \"%s\"\n", a.c_str());
      return usage();
    }
  }
  if (config_path.empty() || (check && teardown) ||
      ((watch || teardown_on_stop) && (check || teardown)))
    return usage();

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
    return 1;
  }
}
