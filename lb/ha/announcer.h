// Whether this node announces each virtual server's VIP, and keeping bird in line with it.
//
// A node announces a virtual server (enables its bird protocol) only while it can serve it:
// XDP attached on every configured interface, the virtual server's table written, at least
// `min_healthy_backends` backends in the table (active: able to take new clients), and the node
// not drained by the operator, and not held (a joining node waiting for the peer sync's snapshot
// of the affinity table, sync.h). Otherwise it withdraws (disables the protocol). A crash or
// `kill -9` of ikelbd changes nothing in bird: forwarding continues, so the announcement stays.
//
// Every round reads the protocol's state from bird first and acts only on a difference, so a
// restarted agent, a restarted bird (which starts with `disabled yes`) or someone's `birdc
// disable` are all reconciled. Each change is logged with its cause; bird errors are counted and
// logged (once per distinct message), never fatal.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bird_control.h"

namespace ikelb {

struct NodeFacts {
  bool attached = false;  // XDP on every configured interface
  bool drained = false;   // `ikelbctl node drain`
  std::string held;       // why the node must not announce yet, e.g. waiting for the sync snapshot
};

struct AnnounceInput {
  std::string vs, protocol;
  uint32_t min_healthy_backends = 1;
  bool programmed = false;  // its table is in the data path
  size_t in_table = 0;      // backends in its table
};

struct AnnounceDecision {
  bool announce = false;
  std::string cause;  // e.g. "3 backends in the table (at least 1 needed)"
};

// Pure: what the node should do for one virtual server, and why.
AnnounceDecision decide_announce(const NodeFacts& node, const AnnounceInput& vs);

// Ready (what `ikelbctl node ready` and a keepalived check ask): every virtual server would be
// announced. The cause names the first one that would not; "" when ready.
std::string not_ready_cause(const NodeFacts& node, const std::vector<AnnounceInput>& all);

struct AnnounceStatus {
  std::string vs, protocol;
  bool wanted = false;
  std::string cause;                      // of `wanted`
  std::optional<bool> announced;          // as bird last reported it (after our change); unknown
  std::string bird_state;                 // bird's State column, "" if unknown
  uint64_t announces = 0, withdraws = 0;  // changes made by this agent
  uint64_t errors = 0;
  std::string last_error;        // "" after a successful round
  std::optional<bool> last_set;  // what this agent last told bird (or found as wanted)
};

class Announcer {
 public:
  explicit Announcer(BirdControl& bird) : bird_(bird) {}

  // One round for every virtual server of `inputs` (those no longer listed are forgotten).
  void reconcile(const NodeFacts& node, const std::vector<AnnounceInput>& inputs);

  // Disables every protocol of `inputs` now (before a teardown): returns the errors.
  std::vector<std::string> withdraw_all(const std::vector<AnnounceInput>& inputs,
                                        const std::string& cause);

  const std::vector<AnnounceStatus>& status() const { return status_; }
  uint64_t errors() const { return errors_; }

 private:
  AnnounceStatus& entry(const AnnounceInput& in);
  void apply(AnnounceStatus& st, bool want, const std::string& cause);
  void failed(AnnounceStatus& st, const std::string& what);

  BirdControl& bird_;
  std::vector<AnnounceStatus> status_;
  uint64_t errors_ = 0;
};

}  // namespace ikelb
