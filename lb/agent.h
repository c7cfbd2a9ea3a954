// ikelbd: a config file turned into a running load balancer. One Boost.Asio io_context:
// signals (SIGTERM/SIGINT leave forwarding running, SIGHUP reloads), the admin API, and a
// periodic walk of the affinity map that counts live pinned clients per backend.
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
};

// Runs until SIGTERM/SIGINT or a teardown request. Returns the process exit code. Throws on
// start-up failures (with the reason).
int run_agent(const AgentOptions& options);

}  // namespace ikelb
