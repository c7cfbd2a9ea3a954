#include "bird_control.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

namespace ikelb {
namespace {

bool is_code(std::string_view s) {
  if (s.size() < 5) return false;
  for (int i = 0; i < 4; i++)
    if (s[i] < '0' || s[i] > '9') return false;
  return s[4] == ' ' || s[4] == '-';
}

std::string sys(const std::string& what) {
  return what + ": " + std::strerror(errno);
}

}  // namespace

std::string BirdReply::error_text() const {
  std::string out;
  for (const auto& l : lines)
    if (l.code >= 8000) out += (out.empty() ? "" : "; ") + l.text;
  return out.empty() ? "bird reply " + std::to_string(final_code) : out;
}

void BirdReplyParser::feed(std::string_view bytes) {
  buffer_.append(bytes);
  size_t start = 0;
  for (size_t nl; (nl = buffer_.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string_view line(buffer_.data() + start, nl - start);
    if (is_code(line)) {
      int code = std::stoi(std::string(line.substr(0, 4)));
      current_.lines.push_back({code, std::string(line.substr(5))});
      if (line[4] == ' ') {
        current_.final_code = code;
        done_.push_back(std::move(current_));
        current_ = {};
      }
    } else if (!line.empty() && line[0] == ' ' && !current_.lines.empty()) {
      current_.lines.push_back({current_.lines.back().code, std::string(line.substr(1))});
    } else {
      buffer_.clear();
      throw BirdError("not a bird control reply: \"" + std::string(line.substr(0, 80)) + "\"");
    }
  }
  buffer_.erase(0, start);
  if (buffer_.size() > 1 << 20) throw BirdError("bird reply line longer than 1 MiB");
}

std::optional<BirdReply> BirdReplyParser::next() {
  if (done_.empty()) return std::nullopt;
  BirdReply r = std::move(done_.front());
  done_.erase(done_.begin());
  return r;
}

std::optional<std::string> protocol_state(const BirdReply& reply, std::string_view name) {
  for (const auto& l : reply.lines) {
    if (l.code != 1002) continue;  // "Name Proto Table State Since Info" rows
    std::istringstream in(l.text);
    std::string n, proto, table, state;
    if (in >> n >> proto >> table >> state && n == name) return state;
  }
  return std::nullopt;
}

BirdSocket::BirdSocket(std::string path, std::chrono::milliseconds deadline)
    : path_(std::move(path)), deadline_(deadline) {}

BirdSocket::~BirdSocket() {
  close();
}

void BirdSocket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  parser_ = {};
}

void BirdSocket::connect() {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.size() >= sizeof(addr.sun_path)) throw BirdError(path_ + ": socket path too long");
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) throw BirdError(sys("socket"));
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    throw BirdError(sys("connect"));
  BirdReply hello = read_reply(std::chrono::steady_clock::now() + deadline_);
  if (hello.final_code != 1)
    throw BirdError("unexpected greeting " + std::to_string(hello.final_code));
}

BirdReply BirdSocket::read_reply(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    if (auto r = parser_.next()) return *r;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      throw BirdError("bird did not answer within " + std::to_string(deadline_.count()) + " ms");
    pollfd p{fd_, POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR) throw BirdError(sys("poll"));
    if (n <= 0) continue;
    char buf[4096];
    ssize_t got = ::read(fd_, buf, sizeof(buf));
    if (got == 0) throw BirdError("bird closed the connection");
    if (got < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      throw BirdError(sys("read"));
    }
    parser_.feed(std::string_view(buf, static_cast<size_t>(got)));
  }
}

BirdReply BirdSocket::command(const std::string& line) {
  try {
    if (fd_ < 0) connect();
    const std::string out = line + "\n";
    // A command line is far below the socket buffer: one non-blocking write is the whole line.
    if (::send(fd_, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size()))
      throw BirdError(sys("write"));
    return read_reply(std::chrono::steady_clock::now() + deadline_);
  } catch (const BirdError& e) {
    close();  // the next command starts on a fresh connection
    throw BirdError("bird control socket " + path_ + ": " + e.what());
  }
}

std::string BirdSocket::state(const std::string& protocol) {
  BirdReply r = command("show protocols " + protocol);
  if (r.final_code == 9001 && r.error_text().find("CF_SYM_UNDEFINED") != std::string::npos)
    throw BirdError("bird has no protocol \"" + protocol + "\" (" + r.error_text() + ")");
  if (!r.ok()) throw BirdError("show protocols " + protocol + ": " + r.error_text());
  auto s = protocol_state(r, protocol);
  if (!s) throw BirdError("bird has no protocol \"" + protocol + "\"");
  return *s;
}

void BirdSocket::set_enabled(const std::string& protocol, bool enabled) {
  const std::string cmd = std::string(enabled ? "enable " : "disable ") + protocol;
  BirdReply r = command(cmd);
  if (!r.ok()) throw BirdError(cmd + ": " + r.error_text());
}

}  // namespace ikelb
