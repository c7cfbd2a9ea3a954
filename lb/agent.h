// ikelbd: a config file turned into a running load balancer. One Boost.Asio io_context:
// signals (SIGTERM/SIGINT leave forwarding running, SIGHUP reloads), the admin API, the health
// endpoints, optionally a watch on the config file, and a periodic walk of the affinity map that
// counts live pinned clients per backend.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "config.h"

namespace ikelb {

struct AgentOptions {
  std::string config_path;
  std::chrono::milliseconds scan_interval{1000};  // between affinity walks
  bool watch_config = false;  // reload when the config file's content changes (ConfigWatcher)
  // SIGTERM/SIGINT tear down (detach XDP, remove the pins) instead of leaving forwarding: for
  // the last run before an uninstall (the Helm chart's `teardownOnStop`).
  bool teardown_on_stop = false;
};

// Runs until SIGTERM/SIGINT or a teardown request. Returns the process exit code. Throws on
// start-up failures (with the reason).
int run_agent(const AgentOptions& options);

}  // namespace ikelb
