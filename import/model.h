// The appliance-independent model of an IKEv2 load-balancing setup, and its conversion into an
// ikelb config. Each vendor parser (f5.h, citrix.h, kemp.h) turns a configuration file into an
// ApplianceConfig: the virtual services it found, with their members and persistence, plus
// findings (where ikelb behaves differently, and what it could not read). convert() merges the
// services of each VIP address into one ikelb virtual server, checks what the parsers cannot
// see alone (pools shared by VIPs, 500 and 4500 with different members), decides with the
// --force kinds whether the import may go on, and validates the result with parse_config().
// Everything here is pure: text in, values out.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace ikelb::appliance {

// Where a setting came from: "bigip.conf:42" or "listvs.xml:17 (VS 3 / Rs 2)".
struct Location {
  std::string file;
  size_t line = 0;          // 1-based; 0 = the file as a whole
  std::string element;      // optional detail (XML element path)
  std::string str() const;  // "file:line (element)"
};

// What a problem is about; the operator may drop each kind with --force=KIND.
enum class ProblemKind {
  kServices,     // a service ikelb cannot forward (TCP, other UDP ports) on an imported VIP
  kShared,       // a pool or gateway used by more than one VIP
  kMismatch,     // the services of one VIP have different members or weights
  kUnsupported,  // unknown syntax, or a setting ikelb cannot reproduce
  kInvalid,      // a value that does not parse (address, port, number)
};
std::string_view to_string(ProblemKind k);  // "services", "shared", ...
std::optional<ProblemKind> problem_kind_from_string(std::string_view s);

enum class Severity {
  kNote,     // ikelb does this differently; the import goes on
  kProblem,  // the element was left out; fatal unless its kind is forced
  kFatal,    // the file cannot be read as a whole (syntax); never forceable
};

struct Finding {
  Severity severity = Severity::kNote;
  ProblemKind kind = ProblemKind::kUnsupported;  // for kProblem
  Location where;
  std::string message;
};

enum class Protocol { kUdp, kEsp, kAny, kTcp, kOther };

struct Member {
  std::string name;     // appliance name of the gateway (node/server), or its address
  std::string address;  // as written; checked by convert()
  uint16_t port = 0;    // 0 = any port (no port translation)
  uint32_t weight = 100;
  std::optional<ConfiguredState> state;  // absent: enabled on the appliance
  Location where;
};

// One appliance virtual server / virtual service.
struct Service {
  std::string name;
  Location where;
  std::string address;  // VIP as written
  Protocol protocol = Protocol::kUdp;
  std::string protocol_text;     // for messages: "udp", "tcp", "ssl", ...
  std::optional<uint16_t> port;  // nullopt: any port
  std::string pool;              // pool / service group / "VS 3" identity, for sharing checks
  Location pool_where;
  std::vector<Member> members;
  bool enabled = true;
  bool source_persistence = false;                // persistence by client source address
  std::optional<uint32_t> persistence_timeout_s;  // 0: never expires
  Location persistence_where;
  // The vendor links this service's persistence with the others of its VIP (F5
  // match-across-services, Citrix persistency group, Kemp port following).
  bool persistence_shared = false;
  // Findings about this service, its pool and members: reported only if its VIP is imported
  // (a web virtual server elsewhere in the file must not fail the import).
  std::vector<Finding> findings;
};

struct ApplianceConfig {
  std::string vendor;  // "F5 BIG-IP", "Citrix ADC", "Kemp LoadMaster"
  std::vector<Service> services;
  std::vector<Finding> findings;  // about the file as a whole
};

struct ImportOptions {
  std::set<ProblemKind> force;          // problem kinds that are dropped instead of fatal
  std::vector<std::string> names;       // only these appliance services (and their VIPs)
  std::vector<std::string> interfaces;  // "interfaces" of the output; default {"eth0"}
};

struct ImportResult {
  bool ok = false;
  std::string config_json;        // the ikelb config (set only when ok)
  std::vector<Finding> findings;  // parser findings and convert()'s own, in file order
  size_t virtual_servers = 0;
  size_t backends = 0;
};

ImportResult convert(const ApplianceConfig& appliance, const ImportOptions& options);

// The report for stderr: one line per finding, "error"/"dropped"/"note", then a summary line.
std::string format_report(const ImportResult& result, const std::string& vendor,
                          const std::set<ProblemKind>& force);

// Parses "--force" values: "services,shared" or "all". Appends an error message on bad input.
bool parse_force(std::string_view text, std::set<ProblemKind>& out, std::string& error);

// Helpers shared by the parsers.
std::string lowercase(std::string_view s);
std::optional<uint32_t> parse_uint(std::string_view s, uint32_t max);

}  // namespace ikelb::appliance
