// ikelb_edge_tool: the actors of the edge netns tests (tests/netns/edge_netns_test.cc).
//
//   frames --ifname IF --src-mac MAC --dst-mac MAC --src IP --dst IP (IPv4 or IPv6)
//          (--udp SPORT:DPORT | --esp SPI) [--size N] [--df 1] [--count K] [--interval-us U]
//       K IPv4 frames (default 1), written with an AF_PACKET socket on IF, addressed to
//       DST-MAC: whatever source address the caller likes (a spoofer on the LAN, or a gateway
//       sending "as" its IKE socket while charon owns the port). N is the IP total length
//       (default 100), filled with a payload; checksums are correct. Prints "sent=<k>".
//   df-send --dst IP --port P --size N
//       one UDP datagram of IP total length N to IP:P (IPv4 or IPv6) from a socket with
//       IP(V6)_PMTUDISC_DO (no local fragmentation). Prints "ok", or "error=EMSGSIZE mtu=<path MTU
//       the kernel knows>" (or another errno name).
//   bind --port P
//       holds a UDP socket on [::]:P (IPv4 too) until SIGTERM, dropping what arrives; prints
//       "bound". ICMP errors about datagrams from port P reach the kernel's UDP code through it.
//   ike-flood --vip IP [--port 500] --rate R --duration-ms D [--linger-ms L]
//       IKE_SA_INIT requests (healthcheck/ike.h: x25519, random SPIi, KE and nonce each) from one
//       UDP socket to IP:port at R per second for D ms, then collects answers for L ms (default
//       1000). Prints "sent=<n> answers=<m> ike_response=<k> cookie=<c> other=<o>".
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>

#include "ike.h"
#include "packet.h"

namespace {

using Clock = std::chrono::steady_clock;
using Options = std::map<std::string, std::string>;

int fail(const std::string& what) {
  std::fprintf(stderr, "ikelb_edge_tool: %s\n", what.c_str());
  return 1;
}

std::string need(const Options& opt, const char* key) {
  auto it = opt.find(key);
  if (it == opt.end()) throw std::invalid_argument(std::string("--") + key + " is required");
  return it->second;
}

long number(const Options& opt, const char* key, long dflt) {
  auto it = opt.find(key);
  return it == opt.end() ? dflt : std::stol(it->second);
}

// ---- frames ----

int frames(const Options& opt) {
  namespace t = ikelb::test;
  const std::string ifname = need(opt, "ifname");
  const long size = number(opt, "size", 100), count = number(opt, "count", 1);
  const long interval_us = number(opt, "interval-us", 0);
  t::Frame f;
  const t::IpAddr src = t::ip(need(opt, "src")), dst = t::ip(need(opt, "dst"));
  f.eth(t::mac(need(opt, "src-mac")), t::mac(need(opt, "dst-mac")));
  if (src.is_v6())
    f.ipv6(src, dst);  // IPv6 routers never fragment: --df is implied
  else
    f.ipv4(src, dst).dont_fragment(number(opt, "df", 0) != 0);
  // IP + UDP, or IP + ESP's SPI and sequence number
  size_t header = (src.is_v6() ? 40 : 20) + 8;
  if (opt.count("udp")) {
    const std::string ports = opt.at("udp");
    const auto colon = ports.find(':');
    if (colon == std::string::npos) throw std::invalid_argument("--udp SPORT:DPORT");
    f.udp(static_cast<uint16_t>(std::stoul(ports.substr(0, colon))),
          static_cast<uint16_t>(std::stoul(ports.substr(colon + 1))));
  } else {
    f.esp(static_cast<uint32_t>(std::stoul(need(opt, "esp"), nullptr, 0)), 1);
  }
  if (size < static_cast<long>(header) || size > 9000) throw std::invalid_argument("bad --size");
  f.payload(t::Bytes(static_cast<size_t>(size) - header, 0x5a));

  const unsigned ifindex = if_nametoindex(ifname.c_str());
  if (!ifindex) return fail("frames: " + ifname + ": " + std::strerror(errno));
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(std::string("frames: socket: ") + std::strerror(errno));
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = static_cast<int>(ifindex);
  to.sll_halen = ETH_ALEN;
  long sent = 0;
  for (long k = 0; k < count; k++) {
    f.ip_id(static_cast<uint32_t>(k + 1) & 0xffff);
    const t::Bytes frame = f.build();
    if (sendto(fd, frame.data(), frame.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) ==
        static_cast<ssize_t>(frame.size()))
      sent++;
    else
      std::fprintf(stderr, "ikelb_edge_tool: frames: send: %s\n", std::strerror(errno));
    if (interval_us) std::this_thread::sleep_for(std::chrono::microseconds(interval_us));
  }
  close(fd);
  std::printf("sent=%ld\n", sent);
  return 0;
}

// ---- df-send ----

int df_send(const Options& opt) {
  sockaddr_storage dst{};
  socklen_t dst_len;
  const std::string dst_text = need(opt, "dst");
  const auto port = htons(static_cast<uint16_t>(std::stoul(need(opt, "port"))));
  const bool v6 = dst_text.find(':') != std::string::npos;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&dst);
    a->sin6_family = AF_INET6;
    a->sin6_port = port;
    if (inet_pton(AF_INET6, dst_text.c_str(), &a->sin6_addr) != 1)
      throw std::invalid_argument("bad --dst");
    dst_len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&dst);
    a->sin_family = AF_INET;
    a->sin_port = port;
    if (inet_pton(AF_INET, dst_text.c_str(), &a->sin_addr) != 1)
      throw std::invalid_argument("bad --dst");
    dst_len = sizeof(*a);
  }
  const long size = std::stol(need(opt, "size"));
  const long headers = v6 ? 48 : 28;
  if (size < headers || size > 65535) throw std::invalid_argument("bad --size");
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(std::string("df-send: socket: ") + std::strerror(errno));
  const int level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
  int mode = v6 ? IPV6_PMTUDISC_DO : IP_PMTUDISC_DO;
  if (setsockopt(fd, level, v6 ? IPV6_MTU_DISCOVER : IP_MTU_DISCOVER, &mode, sizeof(mode)) != 0 ||
      connect(fd, reinterpret_cast<sockaddr*>(&dst), dst_len) != 0)
    return fail(std::string("df-send: ") + std::strerror(errno));
  std::string payload(static_cast<size_t>(size - headers), 'D');
  if (send(fd, payload.data(), payload.size(), 0) == static_cast<ssize_t>(payload.size())) {
    std::printf("ok\n");
  } else {
    const int err = errno;
    int mtu = 0;
    socklen_t len = sizeof(mtu);
    getsockopt(fd, level, v6 ? IPV6_MTU : IP_MTU, &mtu, &len);
    std::printf("error=%s mtu=%d\n", err == EMSGSIZE ? "EMSGSIZE" : strerrorname_np(err), mtu);
  }
  close(fd);
  return 0;
}

// ---- bind ----

volatile sig_atomic_t g_stop = 0;
void on_signal(int) {
  g_stop = 1;
}

// A UDP socket on [::]:P (IPv4 too) that reads and drops, until SIGTERM: the socket an ICMP error
// about the port's datagrams is delivered to. Prints "bound" once it is.
int bind_mode(const Options& opt) {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(std::string("bind: socket: ") + std::strerror(errno));
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(static_cast<uint16_t>(std::stoul(need(opt, "port"))));
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
    return fail(std::string("bind: ") + std::strerror(errno));
  std::printf("bound\n");
  std::fflush(stdout);
  char buf[2048];
  while (!g_stop) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 200) > 0) recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  }
  close(fd);
  return 0;
}

// ---- ike-flood ----

int ike_flood(const Options& opt) {
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<uint16_t>(number(opt, "port", 500)));
  if (inet_pton(AF_INET, need(opt, "vip").c_str(), &dst.sin_addr) != 1)
    throw std::invalid_argument("bad --vip");
  const long rate = std::stol(need(opt, "rate")), duration_ms = std::stol(need(opt, "duration-ms"));
  const long linger_ms = number(opt, "linger-ms", 1000);
  if (rate <= 0 || duration_ms <= 0) throw std::invalid_argument("bad --rate or --duration-ms");
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(std::string("ike-flood: socket: ") + std::strerror(errno));
  int big = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));

  std::mt19937_64 rng(std::random_device{}());
  auto random_bytes = [&](size_t n) {
    ikelb::ike::Bytes b(n);
    for (auto& x : b) x = static_cast<uint8_t>(rng());
    return b;
  };
  long sent = 0, answers = 0, ike_response = 0, cookie = 0, other = 0;
  auto drain = [&] {
    uint8_t buf[2048];
    for (;;) {
      ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n < 0) return;
      answers++;
      // An IKE_SA_INIT response with a responder SPI is a half-open SA at the gateway; a notify
      // with a zero SPIr (COOKIE, ...) is not.
      if (n >= 28 && buf[18] == 34 && (buf[19] & 0x20)) {
        bool spi_r = false;
        for (int i = 8; i < 16; i++) spi_r |= buf[i] != 0;
        bool has_cookie = n >= 36 && buf[16] == 41 && buf[28 + 6] == (16390 >> 8) &&
                          buf[28 + 7] == (16390 & 0xff);
        if (spi_r)
          ike_response++;
        else if (has_cookie)
          cookie++;
        else
          other++;
      } else {
        other++;
      }
    }
  };
  const auto start = Clock::now();
  const auto end = start + std::chrono::milliseconds(duration_ms);
  for (;;) {
    const auto now = Clock::now();
    if (now >= end) break;
    const long due =
        std::chrono::duration_cast<std::chrono::microseconds>(now - start).count() * rate / 1000000;
    for (; sent < due; sent++) {
      ikelb::ike::ProbeRequest req;
      const auto spi = random_bytes(8);
      std::memcpy(req.spi_i.data(), spi.data(), 8);
      req.spi_i[0] |= 1;  // never all zero
      req.ke_data = random_bytes(ikelb::ike::ke_length(req.ke_group));
      req.nonce = random_bytes(32);
      const auto msg = ikelb::ike::encode_request(req);
      if (sendto(fd, msg.data(), msg.size(), 0, reinterpret_cast<sockaddr*>(&dst), sizeof(dst)) !=
          static_cast<ssize_t>(msg.size()))
        return fail(std::string("ike-flood: send: ") + std::strerror(errno));
    }
    drain();
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  const auto stop = Clock::now() + std::chrono::milliseconds(linger_ms);
  while (Clock::now() < stop) {
    pollfd p{fd, POLLIN, 0};
    poll(&p, 1, 20);
    drain();
  }
  close(fd);
  std::printf("sent=%ld answers=%ld ike_response=%ld cookie=%ld other=%ld\n", sent, answers,
              ike_response, cookie, other);
  return 0;
}

int usage() {
  std::fprintf(stderr,
               "usage: ikelb_edge_tool frames --ifname IF --src-mac MAC --dst-mac MAC --src IP "
               "--dst IP\n"
               "           (--udp SPORT:DPORT | --esp SPI) [--size N] [--df 1] [--count K] "
               "[--interval-us U]\n"
               "       ikelb_edge_tool df-send --dst IP --port P --size N\n"
               "       ikelb_edge_tool bind --port P\n"
               "       ikelb_edge_tool ike-flood --vip IP [--port P] --rate R --duration-ms D "
               "[--linger-ms L]\n");
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  const std::string mode = argv[1];
  Options opt;
  for (int i = 2; i < argc; i++) {
    std::string a = argv[i];
    if (!a.starts_with("--") || i + 1 >= argc) return usage();
    opt[a.substr(2)] = argv[++i];
  }
  try {
    if (mode == "frames") return frames(opt);
    if (mode == "df-send") return df_send(opt);
    if (mode == "ike-flood") return ike_flood(opt);
    if (mode == "bind") return bind_mode(opt);
  } catch (const std::exception& e) {
    return fail(mode + ": " + e.what());
  }
  return usage();
}
