// Shared by the import tests: run a parser and convert() over a sample, and look at the result.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "citrix.h"
#include "config.h"
#include "f5.h"
#include "kemp.h"
#include "model.h"

namespace ikelb::appliance::test {

using Parser = std::function<ApplianceConfig(std::string_view, const std::string&)>;

inline std::string sample_path(const std::string& name) {
  return std::string(IKELB_IMPORT_SAMPLES) + "/" + name;
}

inline std::string read_sample(const std::string& name) {
  std::ifstream in(sample_path(name), std::ios::binary);
  EXPECT_TRUE(in) << name;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Outcome {
  ImportResult result;
  nlohmann::json config;  // parsed config_json (null when refused)
  std::string report;

  // The findings of one severity (and kind, for problems) as "line: message" strings.
  std::vector<std::string> lines(Severity s, std::optional<ProblemKind> k = std::nullopt) const {
    std::vector<std::string> out;
    for (const Finding& f : result.findings)
      if (f.severity == s && (!k || f.kind == *k))
        out.push_back(std::to_string(f.where.line) + ": " + f.message);
    return out;
  }
  bool has_note(const std::string& part) const {
    for (const Finding& f : result.findings)
      if (f.severity == Severity::kNote && f.message.find(part) != std::string::npos) return true;
    return false;
  }
  const nlohmann::json& vs(size_t i) const { return config.at("virtual_servers").at(i); }
};

inline Outcome run_text(const Parser& parse, const std::string& text, const std::string& file,
                        ImportOptions options = {}) {
  Outcome r;
  ApplianceConfig a = parse(text, file);
  r.result = convert(a, options);
  r.report = format_report(r.result, a.vendor, options.force);
  if (r.result.ok) {
    r.config = nlohmann::json::parse(r.result.config_json);
    // The contract: whatever import writes, ikelbd --check accepts.
    ConfigResult check = parse_config(r.result.config_json);
    EXPECT_TRUE(check.errors.empty()) << r.result.config_json;
  } else {
    EXPECT_TRUE(r.result.config_json.empty());
  }
  return r;
}

inline Outcome run_sample(const Parser& parse, const std::string& name,
                          ImportOptions options = {}) {
  return run_text(parse, read_sample(name), name, std::move(options));
}

inline ImportOptions forcing(std::initializer_list<ProblemKind> kinds) {
  ImportOptions o;
  o.force = kinds;
  return o;
}

}  // namespace ikelb::appliance::test
