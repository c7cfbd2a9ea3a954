// One gateway's probe session: when to send, what to send, how to judge the answer, when the
// gateway changes between up and down. Pure: time is passed in, randomness is injected, and the
// caller does the I/O, so every path is tested with a fake clock and no sockets.
//
// Modes:
//   stateless  The first probe offers groups {31, 19, 14} with an X25519 KE. The gateway either
//              answers INVALID_KE_PAYLOAD naming the group it prefers, or accepts X25519 (then
//              X25519 is its preference; that one answer leaves a half-open SA for ~30 s).
//              From then on every probe carries a KE for an offered group the gateway does NOT
//              prefer, so it answers INVALID_KE_PAYLOAD and keeps no state.
//   full       A complete IKE_SA_INIT with a KE for the preferred group once known; the gateway
//              keeps a half-open SA per probe (hence the config's 12 s minimum interval).
// A probe is retransmitted byte-identically every timeout/2 until its timeout. Answers that
// count as alive: an IKE_SA_INIT response, INVALID_KE_PAYLOAD, COOKIE (then the interval backs
// off, doubling up to 8x), REDIRECT, INVALID_SYNTAX (alive, but the probe is wrong: warned),
// and NO_PROPOSAL_CHOSEN when so configured. Failures: timeout, ICMP errors, INVALID_MAJOR_VERSION,
// malformed answers. `fall` failures in a row mark the gateway down, `rise` successes up.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>

#include "ike.h"

namespace ikelb::ike {

using Clock = std::chrono::steady_clock;
using Duration = std::chrono::milliseconds;

enum class ProbeMode { kStateless, kFull };

struct SessionSettings {
  ProbeMode mode = ProbeMode::kStateless;
  Duration interval{1000};
  Duration timeout{500};
  Duration jitter{100};  // each interval is lengthened by a random 0..jitter
  uint32_t rise = 2, fall = 3;
  bool port_4500 = false;  // probe NAT-T port: non-ESP marker
  bool no_proposal_chosen_healthy = true;
};

// Upper bounds (seconds) of the probe round-trip histogram buckets.
inline constexpr std::array<double, 10> kRttBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                    0.025,  0.05,  0.1,    0.25,  0.5};

// What a session reports (ikelbctl backends, metrics).
struct SessionStatus {
  bool healthy = true;
  std::string last_result;  // "invalid_ke", "timeout", "icmp: Connection refused", ...
  std::string warning;      // e.g. "gateway refuses the probe's proposals (no_proposal_chosen)"
  std::optional<Duration> rtt;
  uint32_t consecutive_ok = 0, consecutive_fail = 0;
  std::optional<uint16_t> preferred_group;  // learned from the gateway
  uint64_t probes = 0, retransmits = 0;
  Clock::time_point last_change{};
  // Every finished probe by result class: ike_response, invalid_ke, cookie,
  // no_proposal_chosen, redirect, invalid_syntax, invalid_major_version, malformed, timeout,
  // icmp.
  std::map<std::string, uint64_t> results;
  std::array<uint64_t, kRttBuckets.size()> rtt_buckets{};  // cumulative counts per bound
  uint64_t rtt_count = 0;
  double rtt_sum_seconds = 0;
};

class ProbeSession {
 public:
  using RandomFill = std::function<void(std::span<uint8_t>)>;
  // A health change: healthy or not, and why ("3 probes failed: timeout").
  using OnChange = std::function<void(bool healthy, const std::string& cause)>;

  ProbeSession(SessionSettings settings, RandomFill random, bool initially_healthy,
               Clock::time_point now);

  // Call when `now` reaches next_wakeup() (or any time: it does nothing early). Returns a
  // datagram to send (a new probe or a byte-identical retransmit), if any.
  std::optional<Bytes> poll(Clock::time_point now);
  Clock::time_point next_wakeup() const;

  // A datagram from the gateway's probe port. Answers that do not belong to the probe in flight
  // (late answers to an earlier probe, stray packets) are ignored.
  void on_datagram(Clock::time_point now, std::span<const uint8_t> datagram);
  // An ICMP error for the probe socket (ECONNREFUSED, EHOSTUNREACH, ...).
  void on_error(Clock::time_point now, const std::string& cause);

  void set_on_change(OnChange f) { on_change_ = std::move(f); }
  const SessionStatus& status() const { return status_; }
  bool in_flight() const { return request_.has_value(); }

  // The KE group the next probe will carry.
  uint16_t next_ke_group() const;

 private:
  Bytes build_probe();
  void finish(Clock::time_point now, bool ok, const std::string& result, const char* result_class);
  Clock::time_point after_interval(Clock::time_point from);

  SessionSettings settings_;
  RandomFill random_;
  OnChange on_change_;
  SessionStatus status_;
  uint32_t cookie_backoff_ = 1;
  Clock::time_point next_probe_;
  // The probe in flight.
  std::optional<Bytes> request_;
  std::array<uint8_t, 8> spi_{};
  uint16_t sent_group_ = 0;
  Clock::time_point sent_at_{}, retransmit_at_{}, deadline_{};
};

}  // namespace ikelb::ike
