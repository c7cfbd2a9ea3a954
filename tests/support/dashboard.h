// What the monitoring tests (unit and netns) read from deploy/: the Grafana dashboard's PromQL
// and the ikelb_* names that it and the Prometheus rules use. Needs IKELB_DEPLOY_DIR.
#pragma once

#include <cctype>
#include <functional>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ikelb::test {

inline const std::string kDashboard =
    std::string(IKELB_DEPLOY_DIR) + "/grafana/ikelb-dashboard.json";
inline const std::string kRules = std::string(IKELB_DEPLOY_DIR) + "/prometheus/ikelb-rules.yml";

// ikelb_* metric names in a PromQL expression or rules file. A name that is part of a longer
// identifier or of a recording rule's level:metric:operation name is not one.
inline std::set<std::string> referenced_names(const std::string& text) {
  std::set<std::string> out;
  static const std::regex name(R"(ikelb_[A-Za-z0-9_]*)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), name); it != std::sregex_iterator();
       ++it) {
    size_t begin = static_cast<size_t>(it->position()), end = begin + it->length();
    auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
    if (begin > 0 && (ident(text[begin - 1]) || text[begin - 1] == ':')) continue;
    if (end < text.size() && text[end] == ':') continue;
    out.insert(it->str());
  }
  return out;
}

struct PanelExpr {
  std::string panel, expr;  // the title of the panel the query belongs to, the PromQL
};

// Every PromQL query of the dashboard's panels, those nested in rows included.
inline std::vector<PanelExpr> panel_exprs(const nlohmann::json& dashboard) {
  std::vector<PanelExpr> out;
  std::function<void(const nlohmann::json&, const std::string&)> walk =
      [&](const nlohmann::json& j, const std::string& panel) {
        if (j.is_array()) {
          for (const auto& e : j) walk(e, panel);
        } else if (j.is_object()) {
          std::string here =
              j.contains("title") && j["title"].is_string() ? j["title"].get<std::string>() : panel;
          for (const auto& [k, v] : j.items()) {
            if (k == "expr" && v.is_string()) out.push_back({here, v});
            walk(v, here);
          }
        }
      };
  walk(dashboard["panels"], "");
  return out;
}

// Grafana's variables replaced by what they expand to for "All" (and a fixed rate interval).
inline std::string expand_variables(std::string expr) {
  static const std::vector<std::pair<std::string, std::string>> vars{{"$__rate_interval", "1m"},
                                                                     {"$instance", ".*"},
                                                                     {"$virtual_server", ".*"},
                                                                     {"$backend", ".*"}};
  for (const auto& [from, to] : vars)
    for (size_t at; (at = expr.find(from)) != std::string::npos;) expr.replace(at, from.size(), to);
  return expr;
}

}  // namespace ikelb::test
