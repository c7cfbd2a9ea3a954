#include "health_api.h"

namespace ikelb {

AdminResponse route_health(const AdminRequest& request,
                           const std::function<std::vector<std::string>()>& problems) {
  std::string path = request.target.substr(0, request.target.find('?'));
  if (path != "/healthz" && path != "/readyz")
    return {404, {{"error", "no such endpoint " + path + " (try /healthz or /readyz)"}}};
  if (request.method != "GET")
    return {405, {{"error", request.method + " not allowed on " + path + "; use GET"}}};
  if (path == "/healthz") return {200, {{"status", "ok"}}};
  std::vector<std::string> list = problems();
  if (list.empty()) return {200, {{"status", "ready"}}};
  return {503, {{"status", "not ready"}, {"problems", list}}};
}

}  // namespace ikelb
