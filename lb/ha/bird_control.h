// bird2's control socket (the protocol birdc speaks), for announcing and withdrawing a VIP by
// enabling and disabling the bird protocol that carries its route.
//
// Why the socket and not `birdc -s SOCK`: the protocol is a few lines of text (the bird
// documentation's "Remote control" and reply codes), ikelbd then needs no child processes (no
// fork from a daemon, no birdc path, nothing extra to allow under systemd hardening), and every
// exchange has a deadline enforced here. What bird says is parsed by pure functions below,
// unit-tested on bird 2.0.12's real replies.
//
// The protocol: bird greets with "0001 BIRD 2.0.12 ready."; each command is one line; a reply is
// lines "CCCC-text" (more follow), " text" (continues the previous code) and ends with a line
// "CCCC text" (code, space). Codes 0xxx are success, 1xxx/2xxx table rows and headers, 8xxx run
// time errors, 9xxx parse errors (e.g. an unknown protocol name).
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ikelb {

struct BirdLine {
  int code = 0;  // the line's own code, or the code it continues
  std::string text;
};

struct BirdReply {
  std::vector<BirdLine> lines;  // the final line included
  int final_code = 0;
  bool ok() const { return final_code < 8000; }
  std::string error_text() const;  // the text of the 8xxx/9xxx lines
};

// Splits a byte stream into replies.
class BirdReplyParser {
 public:
  // Appends received bytes. Throws BirdError on a line that is not bird's format.
  void feed(std::string_view bytes);
  // The next complete reply, if one has arrived.
  std::optional<BirdReply> next();

 private:
  std::string buffer_;
  BirdReply current_;
  std::vector<BirdReply> done_;
};

struct BirdError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The State column of `show protocols NAME` ("up", "down", "start", "stop"); nullopt if the
// reply has no row for NAME.
std::optional<std::string> protocol_state(const BirdReply& reply, std::string_view name);

// What ikelbd needs from bird. Throws BirdError (unreachable, refused, unknown protocol, timeout).
class BirdControl {
 public:
  virtual ~BirdControl() = default;
  // The protocol's state as `show protocols` reports it.
  virtual std::string state(const std::string& protocol) = 0;
  // `enable NAME` / `disable NAME` (idempotent on bird's side).
  virtual void set_enabled(const std::string& protocol, bool enabled) = 0;
};

// BirdControl over the unix socket. Connects on first use and after any error; every exchange
// (connect and greeting included) must finish within `deadline`.
class BirdSocket : public BirdControl {
 public:
  explicit BirdSocket(std::string path,
                      std::chrono::milliseconds deadline = std::chrono::milliseconds(500));
  ~BirdSocket() override;
  BirdSocket(const BirdSocket&) = delete;
  BirdSocket& operator=(const BirdSocket&) = delete;

  std::string state(const std::string& protocol) override;
  void set_enabled(const std::string& protocol, bool enabled) override;

  // Sends one command line, returns bird's reply (errors included, as a reply).
  BirdReply command(const std::string& line);

 private:
  void connect();
  void close();
  BirdReply read_reply(std::chrono::steady_clock::time_point deadline);

  std::string path_;
  std::chrono::milliseconds deadline_;
  int fd_ = -1;
  BirdReplyParser parser_;
};

}  // namespace ikelb
