// ikelb_netns_tool: the small actors of the namespace tests (tests/netns/agent_test.cc).
//
//   xdp-pass IFNAME...
//       attach a trivial XDP_PASS program (native mode) to each interface, so that it can be the
//       peer of an XDP redirect target, and turn its TX checksum offload off (a partial UDP
//       checksum does not survive an XDP redirect).
//   serve --log FILE [--ike-group G]
//       a fake gateway: UDP 0.0.0.0:500 and 0.0.0.0:4500; every datagram appends
//       "<src_ip> <dst_port> <payload>\n" to FILE and is answered with "R" + payload from the same
//       socket. FILE is created only once both sockets are bound (readiness). Runs until SIGTERM
//       or SIGINT. With --ike-group, an IKE_SA_INIT request on port 500 (a health probe) is not
//       logged but answered like a stateless IKE daemon: INVALID_KE_PAYLOAD naming group G.
//       With --ike-garbage TEXT, a datagram of 8 bytes or more on port 500 is not logged but
//       answered with its first 8 bytes (an IKE request's SPIi) followed by TEXT: a responder that
//       speaks no IKE (tests/netns/probe_test.cc).
//   send --vip IP --port P (--first N --count K | --clients N1,N2,...) --payload-prefix S
//        [--rounds R] [--interval-ms I] [--timeout-ms T]
//       clients: client N has the address 100.64.0.0 + N (100.64.0.N for N < 256) and a socket
//       bound to (address, P). Every round, each client sends "<S>:<address>:<round>" to IP:P;
//       replies are collected until every datagram was answered or T ms (default 2000) after the
//       last round. Prints one line per client, "<address> sent=<n> replied=<m> from_vip=<k>",
//       where replied counts the answers to this client's own datagrams and from_vip those of
//       them that came from IP:P. Exit 0 (1 on usage or set-up errors).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

int fail(const std::string& what) {
  std::fprintf(stderr, "ikelb_netns_tool: %s\n", what.c_str());
  return 1;
}

std::string errno_text(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

// ---- xdp-pass ----

int xdp_pass(const std::vector<std::string>& ifnames) {
  if (ifnames.empty()) return fail("xdp-pass: no interface");
  // r0 = XDP_PASS (2); exit.
  struct bpf_insn insns[2] = {};
  insns[0].code = 0xb7;  // BPF_ALU64 | BPF_MOV | BPF_K
  insns[0].dst_reg = 0;
  insns[0].imm = 2;
  insns[1].code = 0x95;  // BPF_JMP | BPF_EXIT
  int prog = bpf_prog_load(BPF_PROG_TYPE_XDP, "pass", "GPL", insns, 2, nullptr);
  if (prog < 0) return fail("xdp-pass: bpf_prog_load: " + std::string(std::strerror(-prog)));
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return fail(errno_text("xdp-pass: socket"));
  int rc = 0;
  for (const auto& name : ifnames) {
    unsigned ifindex = if_nametoindex(name.c_str());
    if (ifindex == 0) {
      rc = fail(errno_text("xdp-pass: " + name));
      continue;
    }
    int err = bpf_xdp_attach(static_cast<int>(ifindex), prog, XDP_FLAGS_DRV_MODE, nullptr);
    if (err < 0) {
      rc = fail("xdp-pass: attach to " + name + ": " + std::strerror(-err));
      continue;
    }
    ethtool_value ev{};
    ev.cmd = ETHTOOL_STXCSUM;
    ev.data = 0;
    ifreq ifr{};
    std::snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name.c_str());
    ifr.ifr_data = reinterpret_cast<char*>(&ev);
    if (ioctl(sock, SIOCETHTOOL, &ifr) != 0) {
      rc = fail(errno_text("xdp-pass: ETHTOOL_STXCSUM off on " + name));
      continue;
    }
  }
  close(sock);
  close(prog);  // a netlink-attached XDP program stays attached
  return rc;
}

// ---- serve ----

volatile sig_atomic_t g_stop = 0;
std::string g_ike_garbage;  // serve --ike-garbage
void on_signal(int) {
  g_stop = 1;
}

int bind_udp(uint16_t port) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// An IKEv2 IKE_SA_INIT request (RFC 7296 3.1): the answer is INVALID_KE_PAYLOAD naming `group`,
// with the request's SPIi, a zero SPIr and message ID 0. Empty if `d` is not such a request.
std::string invalid_ke_answer(const unsigned char* d, size_t len, uint16_t group) {
  if (len < 28 || d[17] >> 4 != 2 || d[18] != 34 || !(d[19] & 0x08) || (d[19] & 0x20)) return {};
  std::string out(38, '\0');
  std::memcpy(out.data(), d, 8);  // SPIi
  out[16] = 41;                   // next payload: Notify
  out[17] = 0x20;                 // version 2.0
  out[18] = 34;                   // IKE_SA_INIT
  out[19] = 0x20;                 // response
  out[27] = 38;                   // length
  out[28 + 3] = 10;               // Notify payload length
  out[28 + 7] = 17;               // INVALID_KE_PAYLOAD
  out[28 + 8] = static_cast<char>(group >> 8);
  out[28 + 9] = static_cast<char>(group & 0xff);
  return out;
}

int serve(const std::string& log_path, int ike_group) {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  const uint16_t ports[2] = {500, 4500};
  pollfd pfd[2];
  for (int i = 0; i < 2; i++) {
    pfd[i].fd = bind_udp(ports[i]);
    pfd[i].events = POLLIN;
    if (pfd[i].fd < 0) return fail(errno_text("serve: bind UDP " + std::to_string(ports[i])));
  }
  int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return fail(errno_text("serve: open " + log_path));
  char buf[2048];
  while (!g_stop) {
    int n = poll(pfd, 2, 200);
    if (n < 0 && errno != EINTR) return fail(errno_text("serve: poll"));
    for (int i = 0; n > 0 && i < 2; i++) {
      if (!(pfd[i].revents & POLLIN)) continue;
      sockaddr_in from{};
      socklen_t fromlen = sizeof(from);
      ssize_t len = recvfrom(pfd[i].fd, buf + 1, sizeof(buf) - 2, MSG_DONTWAIT,
                             reinterpret_cast<sockaddr*>(&from), &fromlen);
      if (len < 0) continue;
      if (ike_group > 0 && ports[i] == 500) {
        std::string answer =
            invalid_ke_answer(reinterpret_cast<unsigned char*>(buf + 1), static_cast<size_t>(len),
                              static_cast<uint16_t>(ike_group));
        if (!answer.empty()) {
          sendto(pfd[i].fd, answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from),
                 fromlen);
          continue;
        }
      }
      if (!g_ike_garbage.empty() && ports[i] == 500 && len >= 8) {
        std::string answer = std::string(buf + 1, 8) + g_ike_garbage;
        sendto(pfd[i].fd, answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from),
               fromlen);
        continue;
      }
      char src[INET_ADDRSTRLEN] = "?";
      inet_ntop(AF_INET, &from.sin_addr, src, sizeof(src));
      std::string line = std::string(src) + " " + std::to_string(ports[i]) + " " +
                         std::string(buf + 1, static_cast<size_t>(len)) + "\n";
      // One write() per line: nothing buffered, lines never interleave.
      if (write(log, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
        return fail(errno_text("serve: write " + log_path));
      buf[0] = 'R';
      sendto(pfd[i].fd, buf, static_cast<size_t>(len) + 1, 0, reinterpret_cast<sockaddr*>(&from),
             fromlen);
    }
  }
  close(log);
  return 0;
}

// ---- send ----

struct Client {
  std::string address;
  int fd = -1;
  int sent = 0, replied = 0, from_vip = 0;
};

int send_mode(const std::map<std::string, std::string>& opt) {
  auto get = [&](const char* k, const char* dflt) -> std::string {
    auto it = opt.find(k);
    return it != opt.end() ? it->second : dflt ? dflt : "";
  };
  std::string vip_text = get("vip", nullptr), prefix = get("payload-prefix", nullptr);
  if (vip_text.empty() || !opt.count("port") || !opt.count("payload-prefix"))
    return fail("send: --vip, --port and --payload-prefix are required");
  in_addr vip{};
  if (inet_pton(AF_INET, vip_text.c_str(), &vip) != 1) return fail("send: bad --vip");
  const int port = std::atoi(get("port", "0").c_str());
  const int rounds = std::atoi(get("rounds", "1").c_str());
  const int interval_ms = std::atoi(get("interval-ms", "0").c_str());
  const int timeout_ms = std::atoi(get("timeout-ms", "2000").c_str());
  if (port <= 0 || port > 65535 || rounds <= 0 || interval_ms < 0 || timeout_ms < 0)
    return fail("send: bad --port, --rounds, --interval-ms or --timeout-ms");

  std::vector<uint32_t> indices;
  if (opt.count("clients")) {
    std::string list = get("clients", "");
    size_t start = 0;
    while (start < list.size()) {
      size_t comma = list.find(',', start);
      if (comma == std::string::npos) comma = list.size();
      if (comma > start) indices.push_back(std::stoul(list.substr(start, comma - start)));
      start = comma + 1;
    }
  } else {
    uint32_t first = std::stoul(get("first", "1")), count = std::stoul(get("count", "0"));
    for (uint32_t i = 0; i < count; i++) indices.push_back(first + i);
  }
  if (indices.empty()) return fail("send: no clients (--first/--count or --clients)");

  std::vector<Client> clients(indices.size());
  std::vector<pollfd> pfds(indices.size());
  for (size_t i = 0; i < indices.size(); i++) {
    in_addr a{};
    a.s_addr = htonl((100u << 24 | 64u << 16) + indices[i]);
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a, text, sizeof(text));
    clients[i].address = text;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail(errno_text("send: socket"));
    sockaddr_in local{};
    local.sin_family = AF_INET;
    local.sin_port = htons(static_cast<uint16_t>(port));
    local.sin_addr = a;
    if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0)
      return fail(errno_text("send: bind " + clients[i].address + ":" + std::to_string(port)));
    clients[i].fd = fd;
    pfds[i] = {fd, POLLIN, 0};
  }

  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<uint16_t>(port));
  dst.sin_addr = vip;

  auto drain = [&](Clock::time_point until) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      int wait = static_cast<int>(std::max<int64_t>(0, left.count()));
      int n = poll(pfds.data(), pfds.size(), wait);
      if (n < 0 && errno != EINTR) return;
      for (size_t i = 0; n > 0 && i < clients.size(); i++) {
        if (!(pfds[i].revents & POLLIN)) continue;
        char buf[2048];
        for (;;) {
          sockaddr_in from{};
          socklen_t fromlen = sizeof(from);
          ssize_t len = recvfrom(clients[i].fd, buf, sizeof(buf), 0,
                                 reinterpret_cast<sockaddr*>(&from), &fromlen);
          if (len < 0) break;
          std::string reply(buf, static_cast<size_t>(len));
          std::string expect = "R" + prefix + ":" + clients[i].address + ":";
          if (!reply.starts_with(expect)) continue;  // not an answer to this client's datagrams
          clients[i].replied++;
          if (from.sin_addr.s_addr == vip.s_addr && ntohs(from.sin_port) == port)
            clients[i].from_vip++;
        }
      }
      if (Clock::now() >= until) return;
    }
  };
  auto all_answered = [&] {
    for (const auto& c : clients)
      if (c.replied < c.sent) return false;
    return true;
  };

  const auto start = Clock::now();
  for (int r = 0; r < rounds; r++) {
    drain(start + std::chrono::milliseconds(static_cast<int64_t>(r) * interval_ms));
    for (auto& c : clients) {
      std::string payload = prefix + ":" + c.address + ":" + std::to_string(r);
      if (sendto(c.fd, payload.data(), payload.size(), 0, reinterpret_cast<sockaddr*>(&dst),
                 sizeof(dst)) == static_cast<ssize_t>(payload.size()))
        c.sent++;
      else
        std::fprintf(stderr, "ikelb_netns_tool: send from %s: %s\n", c.address.c_str(),
                     std::strerror(errno));
    }
  }
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!all_answered() && Clock::now() < deadline)
    drain(std::min(deadline, Clock::now() + std::chrono::milliseconds(20)));

  for (auto& c : clients) {
    std::printf("%s sent=%d replied=%d from_vip=%d\n", c.address.c_str(), c.sent, c.replied,
                c.from_vip);
    close(c.fd);
  }
  std::fflush(stdout);
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: ikelb_netns_tool xdp-pass IFNAME...\n"
               "       ikelb_netns_tool serve --log FILE [--ike-group G] [--ike-garbage TEXT]\n"
               "       ikelb_netns_tool send --vip IP --port P (--first N --count K | --clients "
               "N,N,...)\n"
               "           --payload-prefix S [--rounds R] [--interval-ms I] [--timeout-ms T]\n");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  std::string mode = argv[1];
  if (mode == "xdp-pass") return xdp_pass(std::vector<std::string>(argv + 2, argv + argc));
  std::map<std::string, std::string> opt;
  for (int i = 2; i < argc; i++) {
    std::string a = argv[i];
    if (!a.starts_with("--") || i + 1 >= argc) return usage();
    opt[a.substr(2)] = argv[++i];
  }
  try {
    if (opt.count("ike-garbage")) g_ike_garbage = opt["ike-garbage"];
    if (mode == "serve" && opt.count("log"))
      return serve(opt["log"], opt.count("ike-group") ? std::stoi(opt["ike-group"]) : 0);
    if (mode == "send") return send_mode(opt);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  return usage();
}
