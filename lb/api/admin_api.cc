#include "admin_api.h"

#include <ctime>

namespace ikelb {
namespace {

AdminResponse error(unsigned status, const std::string& message) {
  return {status, {{"error", message}}};
}

// Splits "/v1/backends/vpn/gw1/drain" after the prefix; drops a query string.
std::vector<std::string> segments(std::string_view target) {
  if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
  std::vector<std::string> out;
  size_t start = 0;
  while (start < target.size()) {
    size_t slash = target.find('/', start);
    if (slash == std::string_view::npos) slash = target.size();
    if (slash > start) out.emplace_back(target.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

}  // namespace

std::string rfc3339(std::chrono::system_clock::time_point t) {
  if (t.time_since_epoch().count() == 0) return "";
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json backends_json(const Controller& controller, const ApiHooks& hooks) {
  nlohmann::json list = nlohmann::json::array();
  for (const BackendView& b : controller.backends()) {
    list.push_back({{"virtual_server", b.vs},
                    {"name", b.name},
                    {"address", b.address.str()},
                    {"id", b.id},
                    {"weight", b.weight},
                    {"spi_id", b.spi_id ? nlohmann::json(*b.spi_id) : nlohmann::json(nullptr)},
                    {"state", b.state},
                    {"detail", b.detail},
                    {"admin_state", b.admin_state},
                    {"operator_state", b.operator_state},
                    {"healthy", b.healthy},
                    {"health_cause", b.health_cause},
                    {"pinned_clients", b.pinned_clients ? nlohmann::json(*b.pinned_clients)
                                                        : nlohmann::json(nullptr)},
                    {"last_change", rfc3339(b.last_change)},
                    {"last_cause", b.last_cause},
                    {"probe", hooks.probe ? hooks.probe(b.id) : nlohmann::json(nullptr)}});
  }
  return {{"backends", list}};
}

AdminResponse route_admin(const AdminRequest& req, Controller& controller, const ApiHooks& hooks) {
  std::vector<std::string> path = segments(req.target);
  if (path.size() < 2 || path[0] != "v1") return error(404, "no such endpoint: " + req.target);
  const std::string& what = path[1];
  auto need = [&](const char* method) { return req.method == method; };

  if (what == "status" && path.size() == 2) {
    if (!need("GET")) return error(405, "use GET for /v1/status");
    nlohmann::json out = hooks.status ? hooks.status() : nlohmann::json::object();
    nlohmann::json vss = nlohmann::json::array();
    for (const VirtualServerView& v : controller.virtual_servers())
      vss.push_back({{"name", v.name},
                     {"address", v.address.str()},
                     {"id", v.id},
                     {"backends", v.backends},
                     {"in_table", v.in_table},
                     {"table_size", v.table_size},
                     {"table_fingerprint", fingerprint_hex(v.fingerprint)}});
    out["virtual_servers"] = vss;
    return {200, out};
  }
  if (what == "backends" && path.size() == 2) {
    if (!need("GET")) return error(405, "use GET for /v1/backends");
    return {200, backends_json(controller, hooks)};
  }
  if (what == "backends" && (path.size() == 4 || path.size() == 5)) {
    if (!need("POST")) return error(405, "use POST for backend actions");
    auto action = parse_action(path.back());
    if (!action)
      return error(404, "unknown action \"" + path.back() + "\" (drain, undrain, disable, enable)");
    std::string ref = path.size() == 5 ? path[2] + "/" + path[3] : path[2];
    try {
      std::string result = controller.act(ref, *action);
      if (hooks.operator_done) hooks.operator_done(result);
      return {200, {{"result", result}}};
    } catch (const ControlError& e) {
      return error(e.status, e.what());
    }
  }
  if (what == "node" && path.size() == 2) {
    if (!need("GET")) return error(405, "use GET for /v1/node");
    if (!hooks.node_status) return error(500, "node status is not available");
    return {200, hooks.node_status()};
  }
  if (what == "node" && path.size() == 3) {
    if (!need("POST")) return error(405, "use POST for node actions");
    if (!hooks.node_action) return error(500, "node actions are not available");
    try {
      std::string result = hooks.node_action(path[2]);
      if (hooks.operator_done) hooks.operator_done(result);
      return {200, {{"result", result}}};
    } catch (const ControlError& e) {
      return error(e.status, e.what());
    }
  }
  if (what == "reload" && path.size() == 2) {
    if (!need("POST")) return error(405, "use POST for /v1/reload");
    if (!hooks.reload) return error(500, "reload is not available");
    std::vector<std::string> errors = hooks.reload();
    if (!errors.empty())
      return {422, {{"error", "config rejected, nothing changed"}, {"errors", errors}}};
    return {200, {{"result", "reloaded"}}};
  }
  if (what == "teardown" && path.size() == 2) {
    if (!need("POST")) return error(405, "use POST for /v1/teardown");
    if (!hooks.teardown) return error(500, "teardown is not available");
    return {200, {{"result", hooks.teardown()}}};
  }
  return error(404, "no such endpoint: " + req.target);
}

}  // namespace ikelb
