#include "sync_socket.h"

#include <boost/asio/ip/address.hpp>
#include <cstring>
#include <system_error>

namespace ikelb {
namespace {

namespace asio = boost::asio;
using asio::ip::udp;

udp::endpoint to_asio(const SyncEndpoint& e) {
  if (e.address.family == IKELB_AF_INET6) {
    asio::ip::address_v6::bytes_type b;
    std::memcpy(b.data(), e.address.addr.u32, 16);
    return {asio::ip::address_v6(b), e.port};
  }
  asio::ip::address_v4::bytes_type b;
  std::memcpy(b.data(), e.address.addr.u32, 4);
  return {asio::ip::address_v4(b), e.port};
}

SyncEndpoint from_asio(const udp::endpoint& e) {
  SyncEndpoint out;
  out.port = e.port();
  asio::ip::address a = e.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    a = asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  if (a.is_v4()) {
    out.address.family = IKELB_AF_INET;
    auto b = a.to_v4().to_bytes();
    std::memcpy(out.address.addr.u32, b.data(), 4);
  } else {
    out.address.family = IKELB_AF_INET6;
    auto b = a.to_v6().to_bytes();
    std::memcpy(out.address.addr.u32, b.data(), 16);
  }
  return out;
}

}  // namespace

SyncSocket::SyncSocket(asio::io_context& io, const SyncEndpoint& listen, Handler handler)
    : socket_(io), handler_(std::move(handler)) {
  const udp::endpoint ep = to_asio(listen);
  boost::system::error_code ec;
  socket_.open(ep.protocol(), ec);
  if (!ec) socket_.set_option(udp::socket::reuse_address(true), ec);
  if (!ec) socket_.bind(ep, ec);
  if (!ec) socket_.non_blocking(true, ec);
  if (ec)
    throw std::system_error(ec.value(), std::generic_category(), "sync socket on " + listen.str());
  family_ = listen.address.family;
  receive();
}

SyncSocket::~SyncSocket() {
  boost::system::error_code ec;
  socket_.close(ec);
}

bool SyncSocket::send(const SyncEndpoint& to, std::span<const uint8_t> datagram) {
  if (to.address.family != family_)
    return false;  // another family than sync.listen: unreachable from this socket
  boost::system::error_code ec;
  socket_.send_to(asio::buffer(datagram.data(), datagram.size()), to_asio(to), 0, ec);
  return !ec;
}

void SyncSocket::receive() {
  socket_.async_receive_from(asio::buffer(buffer_), from_,
                             [this](const boost::system::error_code& ec, size_t n) {
                               if (ec == asio::error::operation_aborted) return;
                               if (!ec) handler_(from_asio(from_), {buffer_.data(), n});
                               receive();
                             });
}

}  // namespace ikelb
