// The agent's health endpoints, served on a loopback TCP listener of their own ("health.listen",
// default 127.0.0.1:9714) for Kubernetes probes and load balancers of load balancers:
//
//   GET /healthz   200 {"status": "ok"}: the agent's event loop answers (liveness)
//   GET /readyz    200 {"status": "ready"}: XDP attached to every configured interface and the
//                  configuration's tables written; else 503 {"status": "not ready",
//                  "problems": [...]} (readiness)
//
// Anything else is 404 (or 405 for another method on these paths). The listener needs no token:
// it reveals nothing but these states and changes nothing. Separate from the admin API (unix
// socket) and from the metrics listener, whose library answers 200 to every scrape.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "admin_http.h"

namespace ikelb {

// `problems` lists why the agent is not ready (empty: ready); called on the loop thread.
AdminResponse route_health(const AdminRequest& request,
                           const std::function<std::vector<std::string>()>& problems);

}  // namespace ikelb
