#include "sandbox.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <system_error>

namespace ikelb::test {

std::string sh(const std::string& command) {
  std::string full = command + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) throw std::system_error(errno, std::generic_category(), "popen " + command);
  std::string out;
  std::array<char, 512> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  if (status != 0) throw std::runtime_error("command failed: " + command + "\n" + out);
  return out;
}

Sandbox Sandbox::create() {
  if (geteuid() != 0) throw std::runtime_error("the bpf tests need root (CAP_BPF, CAP_NET_ADMIN)");
  if (unshare(CLONE_NEWNET) != 0)
    throw std::system_error(errno, std::generic_category(), "unshare(CLONE_NEWNET)");
  sh("ip link set lo up");
  // /proc/sys directly: procps (sysctl) is not on every minimal machine.
  sh("echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding");
  sh("ip link add cli0 address 02:00:00:00:c0:01 type veth peer name cli1");
  sh("ip link add gw0 address 02:00:00:00:a0:01 type veth peer name gw1");
  for (const char* dev : {"cli0", "cli1", "gw0", "gw1"})
    sh(std::string("ip link set up dev ") + dev);
  sh("ip addr add 198.51.100.1/24 dev cli0");
  sh("ip addr add 2001:db8:c::1/64 dev cli0 nodad");
  sh("ip addr add 10.0.0.1/24 dev gw0");
  sh("ip addr add fd00::1/64 dev gw0 nodad");
  sh("ip neigh replace 198.51.100.2 lladdr 02:00:00:00:c0:02 nud permanent dev cli0");
  sh("ip neigh replace 2001:db8:c::2 lladdr 02:00:00:00:c0:02 nud permanent dev cli0");
  sh("ip neigh replace 198.51.100.50 lladdr 02:00:00:00:c0:50 nud permanent dev cli0");
  sh("ip route add 100.64.0.0/10 via 198.51.100.2 dev cli0");
  sh("ip -6 route add 2001:db8:100::/48 via 2001:db8:c::2 dev cli0");
  for (int i = 1; i <= 3; i++) {
    std::string mac = "02:00:00:00:b0:0" + std::to_string(i);
    sh("ip neigh replace 10.0.0.1" + std::to_string(i) + " lladdr " + mac +
       " nud permanent dev gw0");
    sh("ip neigh replace fd00::1" + std::to_string(i) + " lladdr " + mac +
       " nud permanent dev gw0");
  }
  Sandbox s;
  s.client_ifindex = if_nametoindex("cli0");
  s.gateway_ifindex = if_nametoindex("gw0");
  if (!s.client_ifindex || !s.gateway_ifindex)
    throw std::runtime_error("sandbox interfaces missing");
  return s;
}

XdpResult run_xdp(int prog_fd, std::span<const uint8_t> frame, uint32_t ingress_ifindex) {
  XdpResult r;
  r.frame.resize(frame.size() + 256);
  xdp_md ctx{};
  ctx.data_end = static_cast<uint32_t>(frame.size());
  ctx.ingress_ifindex = ingress_ifindex;
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = r.frame.data(),
              .data_size_in = static_cast<uint32_t>(frame.size()),
              .data_size_out = static_cast<uint32_t>(r.frame.size()), .ctx_in = &ctx,
              .ctx_size_in = sizeof(ctx), .repeat = 1);
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
    throw std::system_error(errno, std::generic_category(), "BPF_PROG_TEST_RUN");
  r.verdict = opts.retval;
  r.frame.resize(opts.data_size_out);
  return r;
}

}  // namespace ikelb::test
