// A private network namespace for the process that creates it, with a fixed router topology for
// running the XDP program under BPF_PROG_TEST_RUN. unshare(CLONE_NEWNET) gives the calling thread
// a namespace that nobody else can see and that the kernel destroys, interfaces included, when
// the process exits: nothing to clean up, even when a test crashes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ikelb::test {

// Runs a shell command in the current namespace; throws std::runtime_error with its output if it
// fails.
std::string sh(const std::string& command);

// The topology inside the sandbox (the ikelb host as a router):
//   cli0 (peer cli1): client side. 198.51.100.1/24, 2001:db8:c::1/64, MAC 02:00:00:00:c0:01.
//     Clients 100.64.0.0/10 and 2001:db8:100::/48 are routed via 198.51.100.2 / 2001:db8:c::2
//     (MAC 02:00:00:00:c0:02). An on-link backend 198.51.100.50 (MAC 02:00:00:00:c0:50) serves
//     the one-armed (XDP_TX) case.
//   gw0 (peer gw1): gateway side. 10.0.0.1/24, fd00::1/64, MAC 02:00:00:00:a0:01.
//     Backends 10.0.0.11-13 and fd00::11-13 with MACs 02:00:00:00:b0:01-03 (permanent
//     neighbours); 10.0.0.14 and fd00::14 have no neighbour entry.
// IPv4 and IPv6 forwarding are on. VIPs (203.0.113.10, 2001:db8:f::10) are not local addresses:
// a DNAT-only balancer receives them by routing.
struct Sandbox {
  uint32_t client_ifindex = 0;   // cli0
  uint32_t gateway_ifindex = 0;  // gw0

  // Creates the namespace and topology. Throws (with the reason) if not root.
  static Sandbox create();
};

struct XdpResult {
  uint32_t verdict = 0;  // XDP_PASS, XDP_TX, XDP_REDIRECT, ...
  std::vector<uint8_t> frame;
};

// One BPF_PROG_TEST_RUN of `prog_fd` on `frame`, as if received on `ingress_ifindex`. Throws
// std::system_error if the kernel refuses the run.
XdpResult run_xdp(int prog_fd, std::span<const uint8_t> frame, uint32_t ingress_ifindex);

}  // namespace ikelb::test
