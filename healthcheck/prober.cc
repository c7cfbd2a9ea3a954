#include "prober.h"

#include <sys/random.h>

#include <array>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstring>

namespace ikelb {

namespace asio = boost::asio;
using udp = asio::ip::udp;

void kernel_random(std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = getrandom(out.data() + done, out.size() - done, 0);
    if (n > 0) done += static_cast<size_t>(n);
  }
}

bool ProbeTarget::same_probe(const ProbeTarget& o) const {
  const auto& a = settings;
  const auto& b = o.settings;
  return id == o.id && address == o.address && port == o.port && source == o.source &&
         a.mode == b.mode && a.interval == b.interval && a.timeout == b.timeout &&
         a.jitter == b.jitter && a.rise == b.rise && a.fall == b.fall &&
         a.port_4500 == b.port_4500 && a.no_proposal_chosen_healthy == b.no_proposal_chosen_healthy;
}

struct Prober::Entry : std::enable_shared_from_this<Prober::Entry> {
  Entry(asio::io_context& io, ProbeTarget t, OnChange cb)
      : target(std::move(t)),
        session(target.settings, kernel_random, target.initially_healthy, ike::Clock::now()),
        socket(io),
        timer(io),
        on_change(std::move(cb)) {}

  // Opens and connects the socket; returns an error message, or "".
  std::string open() {
    boost::system::error_code ec;
    udp::endpoint peer(asio::ip::make_address(target.address.str(), ec), target.port);
    if (ec) return "bad address " + target.address.str();
    socket.open(peer.protocol(), ec);
    if (!ec && target.source)
      socket.bind(udp::endpoint(asio::ip::make_address(target.source->str()), 0), ec);
    if (!ec) socket.connect(peer, ec);
    if (ec) {
      return "probe socket to " + target.address.str() + ":" + std::to_string(target.port) +
             (target.source ? " from " + target.source->str() : "") + ": " + ec.message();
    }
    return "";
  }

  void start() {
    auto self = shared_from_this();
    session.set_on_change([self](bool healthy, const std::string& cause) {
      if (self->on_change && !self->stopped) self->on_change(self->target.id, healthy, cause);
    });
    receive();
    arm();
  }

  void stop() {
    stopped = true;
    boost::system::error_code ec;
    timer.cancel();
    socket.close(ec);
  }

  void arm() {
    timer.expires_at(session.next_wakeup());
    timer.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || self->stopped) return;
      self->tick();
    });
  }

  void tick() {
    if (auto datagram = session.poll(ike::Clock::now())) {
      boost::system::error_code ec;
      socket.send(asio::buffer(*datagram), 0, ec);
      // An error here is usually a queued ICMP error from the previous probe.
      if (ec) session.on_error(ike::Clock::now(), ec.message());
    }
    arm();
  }

  void receive() {
    socket.async_receive(asio::buffer(buffer), [self = shared_from_this()](
                                                   const boost::system::error_code& ec, size_t n) {
      if (self->stopped || ec == asio::error::operation_aborted) return;
      if (ec) {
        self->session.on_error(ike::Clock::now(), ec.message());
      } else {
        self->session.on_datagram(ike::Clock::now(),
                                  std::span<const uint8_t>(self->buffer.data(), n));
      }
      self->arm();  // an answer may have moved the next wakeup
      self->receive();
    });
  }

  ProbeTarget target;
  ike::ProbeSession session;
  udp::socket socket;
  asio::steady_timer timer;
  OnChange on_change;
  std::array<uint8_t, 4096> buffer{};
  bool stopped = false;
};

Prober::Prober(asio::io_context& io, OnChange on_change)
    : io_(io), on_change_(std::move(on_change)) {}

Prober::~Prober() {
  for (auto& [id, e] : sessions_) e->stop();
}

std::vector<std::string> Prober::set_targets(const std::vector<ProbeTarget>& targets) {
  std::vector<std::string> errors;
  std::map<uint32_t, std::shared_ptr<Entry>> next;
  for (const ProbeTarget& t : targets) {
    auto it = sessions_.find(t.id);
    if (it != sessions_.end() && it->second->target.same_probe(t)) {
      next[t.id] = it->second;
      sessions_.erase(it);
      continue;
    }
    auto e = std::make_shared<Entry>(io_, t, on_change_);
    if (std::string err = e->open(); !err.empty()) {
      errors.push_back(err);
      if (on_change_) on_change_(t.id, false, err);
      continue;
    }
    e->start();
    next[t.id] = e;
  }
  for (auto& [id, e] : sessions_) e->stop();
  sessions_ = std::move(next);
  return errors;
}

std::optional<ike::SessionStatus> Prober::status(uint32_t id) const {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt;
  return it->second->session.status();
}

}  // namespace ikelb
