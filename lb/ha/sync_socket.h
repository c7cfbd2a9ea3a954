// The peer sync's UDP socket (Boost.Asio): bound to sync.listen, sends to the peers from it (so
// that peers recognise the source) and hands every datagram received to a handler on the loop.
// Sends never block: a full socket buffer drops the datagram (counted by the sync as a send
// error; the next round sends what is refreshed again).
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <functional>
#include <span>

#include "sync.h"

namespace ikelb {

class SyncSocket : public SyncSender {
 public:
  using Handler = std::function<void(const SyncEndpoint& from, std::span<const uint8_t>)>;
  // Throws std::system_error naming the address when it cannot bind.
  SyncSocket(boost::asio::io_context& io, const SyncEndpoint& listen, Handler handler);
  ~SyncSocket() override;

  bool send(const SyncEndpoint& to, std::span<const uint8_t> datagram) override;

 private:
  void receive();

  boost::asio::ip::udp::socket socket_;
  Handler handler_;
  uint8_t family_ = 0;  // of sync.listen: a peer of the other family is unreachable
  boost::asio::ip::udp::endpoint from_;
  std::array<uint8_t, 65536> buffer_{};
};

}  // namespace ikelb
