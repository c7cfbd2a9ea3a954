#include "import_cli.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "model.h"
#include "vendors.h"

namespace ikelb::appliance {

const char* const kImportUsage =
    "  import f5|citrix|kemp FILE [--name VS]... [--force KIND[,KIND]] [--interface IF]...\n"
    "         [--out FILE]\n"
    "                      offline: an ikelb config from an F5 bigip.conf, a Citrix ns.conf or\n"
    "                      Kemp listvs XML, on stdout (or --out); the report on stderr. One\n"
    "                      virtual server per VIP address (UDP 500, 4500 and ESP merged).\n"
    "                      --name: only that appliance virtual server and its VIP's others.\n"
    "                      Problems fail the import (exit 1) unless --force drops the elements\n"
    "                      of their kind: services (TCP and other ports on an IKE VIP), shared\n"
    "                      (gateways of another VIP: this VIP is dropped), mismatch (500/4500\n"
    "                      members differ: only common gateways kept), unsupported (unknown\n"
    "                      syntax or settings: skipped), invalid (unparsable values: skipped),\n"
    "                      all. Syntax errors that stop reading the file are never forced.\n";

namespace {

constexpr size_t kMaxInput = 64 << 20;

int usage(const std::string& why) {
  std::fprintf(stderr, "ikelbctl import: %s\nusage: ikelbctl\n%s", why.c_str(), kImportUsage);
  return 2;
}

bool read_file(const std::string& path, std::string& out, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = path + ": " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  if (out.size() > kMaxInput) {
    error = path + ": larger than 64 MiB";
    return false;
  }
  return true;
}

// Written next to the target and renamed, so a reader never sees half a config.
bool write_file(const std::string& path, const std::string& text, std::string& error) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!(out << text) || !out.flush()) {
      error = tmp + ": " + std::strerror(errno);
      return false;
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = path + ": " + std::strerror(errno);
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace

int import_main(const std::vector<std::string>& args) {
  std::vector<std::string> words;
  ImportOptions options;
  std::string out_path;
  for (size_t i = 0; i < args.size(); i++) {
    const std::string& a = args[i];
    auto value = [&](const std::string& opt, std::string& v) {
      if (a == opt && i + 1 < args.size()) {
        v = args[++i];
        return true;
      }
      if (a.starts_with(opt + "=")) {
        v = a.substr(opt.size() + 1);
        return true;
      }
      return false;
    };
    std::string v;
    if (value("--name", v)) {
      options.names.push_back(v);
    } else if (value("--interface", v)) {
      options.interfaces.push_back(v);
    } else if (value("--out", v)) {
      out_path = v;
    } else if (value("--force", v)) {
      std::string error;
      if (!parse_force(v, options.force, error)) return usage(error);
    } else if (a == "-h" || a == "--help") {
      std::fprintf(stderr, "usage: ikelbctl\n%s", kImportUsage);
      return 0;
    } else if (a.starts_with("-")) {
      return usage("unknown option " + a);
    } else {
      words.push_back(a);
    }
  }
  if (words.size() != 2) return usage("expected a vendor (f5, citrix, kemp) and a FILE");
  const std::string& vendor = words[0];
  const Parser parse = parser_for(vendor);
  if (!parse) return usage("unknown vendor \"" + vendor + "\" (f5, citrix, kemp)");

  std::string text, error;
  if (!read_file(words[1], text, error)) {
    std::fprintf(stderr, "ikelbctl import: %s\n", error.c_str());
    return 2;
  }
  const ApplianceConfig appliance = parse(text, words[1]);
  const ImportResult result = convert(appliance, options);
  std::fputs(format_report(result, appliance.vendor, options.force).c_str(), stderr);
  if (!result.ok) return 1;
  if (out_path.empty()) {
    std::fputs(result.config_json.c_str(), stdout);
    return std::fflush(stdout) == 0 ? 0 : 2;
  }
  if (!write_file(out_path, result.config_json, error)) {
    std::fprintf(stderr, "ikelbctl import: %s\n", error.c_str());
    return 2;
  }
  return 0;
}

}  // namespace ikelb::appliance
