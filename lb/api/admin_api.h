// The admin API's routes and JSON shapes, separate from the transport (admin_http.h) and from
// the OS-facing agent, so they are unit-tested against a Controller over fake maps.
//
//   GET  /v1/status                       agent, interfaces, virtual servers, affinity, reloads
//   GET  /v1/backends                     every backend with state, detail and pinned clients
//   POST /v1/backends/{NAME|VS/NAME}/{drain|undrain|disable|enable}
//   GET  /v1/node                         drained, ready (and why not), announcements in bird
//   POST /v1/node/{drain|undrain}         withdraw this node's VIPs (forwarding continues), or not
//   POST /v1/reload                       re-read the config file; 422 with errors if rejected
//   POST /v1/teardown                     detach XDP, unpin everything, stop the agent
// Errors are {"error": "..."} with a 4xx status (404 unknown route or backend, 405 method,
// 409 not applicable, 422 config rejected).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "admin_http.h"
#include "controller.h"

namespace ikelb {

struct ApiHooks {
  std::function<nlohmann::json()> status;                      // agent-level fields for /v1/status
  std::function<std::vector<std::string>()> reload;            // errors; empty = applied
  std::function<std::string()> teardown;                       // what was removed
  std::function<void(const std::string&)> operator_done;       // after a successful action
  std::function<nlohmann::json(uint32_t id)> probe;            // a backend's probe status, or null
  std::function<nlohmann::json()> node_status;                 // drained, ready, announcements
  std::function<std::string(const std::string&)> node_action;  // drain|undrain; ControlError
};

AdminResponse route_admin(const AdminRequest& request, Controller& controller,
                          const ApiHooks& hooks);

nlohmann::json backends_json(const Controller& controller, const ApiHooks& hooks);
std::string rfc3339(std::chrono::system_clock::time_point t);

}  // namespace ikelb
