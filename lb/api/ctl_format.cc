#include "ctl_format.h"

#include <algorithm>

namespace ikelb {
namespace {

std::string text(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return "-";
  const auto& v = j[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

std::string format_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); i++) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); i++) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string format_status(const nlohmann::json& s) {
  std::string out = "ikelbd " + text(s, "version") + ", started " + text(s, "started") +
                    ", config " + text(s, "config") +
                    (s.value("adopted", false) ? " (pinned state adopted)" : "") + "\n";
  std::string ifs;
  for (const auto& i : s.value("interfaces", nlohmann::json::array()))
    ifs += (ifs.empty() ? "" : ", ") + text(i, "name") + " (" + text(i, "mode") + ")";
  out += "interfaces: " + (ifs.empty() ? std::string("none") : ifs) + "\n";
  const auto& a = s.value("affinity", nlohmann::json::object());
  out += "affinity: " + text(a, "entries") + " of " + text(a, "capacity") +
         " entries, idle timeout " + text(a, "idle_timeout_s") + " s\n";
  const auto& r = s.value("last_reload", nlohmann::json::object());
  out += "last reload: " + text(r, "time") + (r.value("ok", false) ? " ok" : " REJECTED") + "\n";
  for (const auto& e : r.value("errors", nlohmann::json::array()))
    out += "  " + e.get<std::string>() + "\n";
  std::vector<std::vector<std::string>> rows = {
      {"VIRTUAL SERVER", "ADDRESS", "BACKENDS", "IN TABLE", "TABLE SIZE", "FINGERPRINT"}};
  for (const auto& v : s.value("virtual_servers", nlohmann::json::array()))
    rows.push_back({text(v, "name"), text(v, "address"), text(v, "backends"), text(v, "in_table"),
                    text(v, "table_size"), text(v, "table_fingerprint")});
  out += "\n" + format_table(rows);
  if (s.contains("node") && s["node"].is_object()) out += "\n" + format_node(s["node"]);
  if (s.contains("sync") && s["sync"].is_object()) out += format_sync(s["sync"]);
  return out;
}

std::string format_sync(const nlohmann::json& y) {
  auto total = [](const nlohmann::json& by_reason) {
    uint64_t n = 0;
    std::string detail;
    if (by_reason.is_object())
      for (auto it = by_reason.begin(); it != by_reason.end(); ++it) {
        n += it.value().get<uint64_t>();
        detail += (detail.empty() ? " (" : ", ") + it.key() + " " + it.value().dump();
      }
    return std::to_string(n) + (detail.empty() ? "" : detail + ")");
  };
  std::string snapshot = text(y, "snapshot");
  if (y.contains("snapshot_ms") && !y["snapshot_ms"].is_null())
    snapshot +=
        " after " + text(y, "snapshot_ms") + " ms, " + text(y, "snapshot_records") + " records";
  return "sync: node " + text(y, "node_id") + " on " + text(y, "listen") + ", " +
         std::to_string(y.value("peers", nlohmann::json::array()).size()) + " peers, snapshot " +
         snapshot + "\n" + "sync: records sent " + text(y, "records_sent") + ", received " +
         text(y, "records_received") + ", merged " + text(y, "merged") + ", kept local " +
         text(y, "kept_local") + ", dropped " + total(y.value("dropped", nlohmann::json())) +
         ", queue " + text(y, "queue") + "\n" + "sync: datagrams sent " +
         text(y, "datagrams_sent") + ", received " + text(y, "datagrams_received") + ", refused " +
         total(y.value("refused", nlohmann::json())) + ", send errors " + text(y, "send_errors") +
         "\n";
}

std::string format_node(const nlohmann::json& n) {
  std::string out =
      std::string("node: ") + (n.value("drained", false) ? "drained, " : "") +
      (n.value("ready", false) ? "ready" : "not ready (" + text(n, "not_ready_cause") + ")") + "\n";
  const auto& list = n.value("announce", nlohmann::json::array());
  if (list.empty()) return out + "announce: not configured\n";
  out += "announce: bird at " + text(n, "bird_socket") + "\n";
  std::vector<std::vector<std::string>> rows = {
      {"VIRTUAL SERVER", "PROTOCOL", "WANTED", "BIRD", "CHANGES", "ERRORS", "WHY"}};
  for (const auto& a : list) {
    std::string why = text(a, "cause");
    if (std::string e = a.value("last_error", std::string()); !e.empty()) why += "; error: " + e;
    rows.push_back({text(a, "virtual_server"), text(a, "protocol"),
                    a.value("wanted", false) ? "announce" : "withdraw",
                    a.value("bird_state", std::string()).empty() ? "?" : text(a, "bird_state"),
                    "+" + text(a, "announces") + " -" + text(a, "withdraws"), text(a, "errors"),
                    why});
  }
  return out + format_table(rows);
}

std::string format_backends(const nlohmann::json& b) {
  std::vector<std::vector<std::string>> rows = {{"VIRTUAL SERVER", "BACKEND", "ADDRESS", "WEIGHT",
                                                 "SPI ID", "STATE", "CLIENTS", "PROBE", "RTT",
                                                 "OK/FAIL", "GROUP", "LAST CHANGE"}};
  std::vector<std::string> warnings;
  for (const auto& e : b.value("backends", nlohmann::json::array())) {
    std::string change = text(e, "last_change");
    if (std::string cause = text(e, "last_cause"); cause != "-" && !cause.empty())
      change += " (" + cause + ")";
    const nlohmann::json probe = e.value("probe", nlohmann::json());
    std::string result = "-", rtt = "-", okfail = "-", group = "-";
    if (probe.is_object()) {
      result = text(probe, "last_result");
      if (probe.contains("rtt_ms") && !probe["rtt_ms"].is_null())
        rtt = text(probe, "rtt_ms") + " ms";
      okfail = text(probe, "consecutive_ok") + "/" + text(probe, "consecutive_fail");
      group = text(probe, "preferred_group");
      if (std::string w = probe.value("warning", std::string()); !w.empty())
        warnings.push_back(text(e, "virtual_server") + "/" + text(e, "name") + ": " + w);
    }
    rows.push_back({text(e, "virtual_server"), text(e, "name"), text(e, "address"),
                    text(e, "weight"), text(e, "spi_id"), text(e, "detail"),
                    text(e, "pinned_clients"), result, rtt, okfail, group, change});
  }
  std::string out = format_table(rows);
  for (const auto& w : warnings) out += "warning: " + w + "\n";
  return out;
}

}  // namespace ikelb
