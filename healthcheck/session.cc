#include "session.h"

#include <algorithm>

namespace ikelb::ike {
namespace {

// Groups every probe offers, most modern first (DESIGN.md).
const std::vector<uint16_t> kOfferedGroups{kGroupX25519, kGroupEcp256, kGroupModp2048};

// The P-256 base point G (x || y, SEC 2): a valid ECP256 public value, so a full-mode probe can
// complete a handshake with a gateway that insists on group 19 (random bytes are not a point).
constexpr std::array<uint8_t, 64> kEcp256Generator{
    0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2,
    0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96,
    0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16,
    0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5};

}  // namespace

ProbeSession::ProbeSession(SessionSettings settings, RandomFill random, bool initially_healthy,
                           Clock::time_point now)
    : settings_(settings), random_(std::move(random)), next_probe_(now) {
  status_.healthy = initially_healthy;
  status_.last_change = now;
}

uint16_t ProbeSession::next_ke_group() const {
  const auto& pref = status_.preferred_group;
  if (settings_.mode == ProbeMode::kFull)
    // A KE the gateway accepts: X25519 and MODP2048 values from random bytes, ECP256 the base
    // point.
    return pref && (*pref == kGroupModp2048 || *pref == kGroupX25519 || *pref == kGroupEcp256)
               ? *pref
               : kGroupX25519;
  if (!pref || *pref != kGroupX25519) return kGroupX25519;
  return kGroupModp2048;  // anything offered but not preferred: the answer is INVALID_KE
}

Bytes ProbeSession::build_probe() {
  ProbeRequest req;
  do random_(spi_);
  while (std::all_of(spi_.begin(), spi_.end(), [](uint8_t b) { return b == 0; }));
  req.spi_i = spi_;
  req.proposals[0].groups = kOfferedGroups;
  req.ke_group = sent_group_ = next_ke_group();
  req.ke_data.resize(ke_length(req.ke_group));
  random_(req.ke_data);
  if (req.ke_group == kGroupEcp256)
    req.ke_data.assign(kEcp256Generator.begin(), kEcp256Generator.end());
  if (req.ke_group == kGroupModp2048) {
    // A value in 1 < y < p - 1: p starts with 64 one bits, so a first byte below 0xff does.
    req.ke_data[0] &= 0x7f;
    req.ke_data.back() |= 0x02;
  }
  req.nonce.resize(32);
  random_(req.nonce);
  req.non_esp_marker = settings_.port_4500;
  return encode_request(req);
}

Clock::time_point ProbeSession::after_interval(Clock::time_point from) {
  auto interval = settings_.interval * cookie_backoff_;
  if (settings_.jitter.count() > 0) {
    uint32_t r = 0;
    random_({reinterpret_cast<uint8_t*>(&r), sizeof(r)});
    interval += Duration(r % (settings_.jitter.count() + 1));
  }
  return from + interval;
}

std::optional<Bytes> ProbeSession::poll(Clock::time_point now) {
  if (request_) {
    if (now >= deadline_) {
      finish(now, false, "timeout", "timeout");
      return std::nullopt;
    }
    if (now >= retransmit_at_) {
      retransmit_at_ += settings_.timeout / 2;
      status_.retransmits++;
      return request_;  // byte-identical: strongSwan answers a retransmit from its cache
    }
    return std::nullopt;
  }
  if (now < next_probe_) return std::nullopt;
  request_ = build_probe();
  sent_at_ = now;
  retransmit_at_ = now + settings_.timeout / 2;
  deadline_ = now + settings_.timeout;
  next_probe_ = after_interval(now);
  status_.probes++;
  return request_;
}

Clock::time_point ProbeSession::next_wakeup() const {
  if (!request_) return next_probe_;
  return std::min(retransmit_at_, deadline_);
}

void ProbeSession::on_datagram(Clock::time_point now, std::span<const uint8_t> datagram) {
  if (!request_) return;
  ProbeResult r = decode_response(datagram, spi_, settings_.port_4500);
  if (r.kind == ResultKind::kMalformed && r.detail == "SPIi mismatch") return;  // not ours
  status_.rtt = std::chrono::duration_cast<Duration>(now - sent_at_);
  status_.warning.clear();
  bool ok = true;
  std::string result(to_string(r.kind));
  switch (r.kind) {
    case ResultKind::kIkeResponse:
      status_.preferred_group = sent_group_;
      break;
    case ResultKind::kInvalidKe:
      status_.preferred_group = r.group;
      break;
    case ResultKind::kCookie:
      cookie_backoff_ = std::min<uint32_t>(cookie_backoff_ * 2, 8);
      status_.warning = "gateway asks for cookies: probing every " +
                        std::to_string((settings_.interval * cookie_backoff_).count()) + " ms";
      break;
    case ResultKind::kNoProposalChosen:
      ok = settings_.no_proposal_chosen_healthy;
      status_.warning = "gateway refuses the probe's proposals (no_proposal_chosen)";
      break;
    case ResultKind::kRedirect:
      status_.warning = "gateway redirects new clients elsewhere";
      break;
    case ResultKind::kInvalidSyntax:
      status_.warning = "gateway says the probe is malformed (invalid_syntax)";
      break;
    case ResultKind::kInvalidMajorVersion:
      ok = false;
      break;
    case ResultKind::kMalformed:
      ok = false;
      result += ": " + r.detail;
      break;
  }
  if (r.kind != ResultKind::kCookie) cookie_backoff_ = 1;
  if (r.kind != ResultKind::kMalformed) {  // garbage is not an IKE round trip
    double seconds = std::chrono::duration<double>(now - sent_at_).count();
    for (size_t i = 0; i < kRttBuckets.size(); i++)
      if (seconds <= kRttBuckets[i]) status_.rtt_buckets[i]++;
    status_.rtt_count++;
    status_.rtt_sum_seconds += seconds;
  }
  finish(now, ok, result, to_string(r.kind).data());
}

void ProbeSession::on_error(Clock::time_point now, const std::string& cause) {
  if (!request_) return;
  finish(now, false, "icmp: " + cause, "icmp");
}

void ProbeSession::finish(Clock::time_point now, bool ok, const std::string& result,
                          const char* result_class) {
  request_.reset();
  status_.last_result = result;
  status_.results[result_class]++;
  if (ok) {
    status_.consecutive_ok++;
    status_.consecutive_fail = 0;
  } else {
    status_.consecutive_fail++;
    status_.consecutive_ok = 0;
    status_.rtt.reset();
  }
  if (!status_.healthy && ok && status_.consecutive_ok >= settings_.rise) {
    status_.healthy = true;
    status_.last_change = now;
    if (on_change_)
      on_change_(true, std::to_string(status_.consecutive_ok) + " probes answered: " + result);
  } else if (status_.healthy && !ok && status_.consecutive_fail >= settings_.fall) {
    status_.healthy = false;
    status_.last_change = now;
    if (on_change_)
      on_change_(false, std::to_string(status_.consecutive_fail) + " probes failed: " + result);
  }
}

}  // namespace ikelb::ike
