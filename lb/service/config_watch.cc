#include "config_watch.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <fstream>
#include <sstream>
#include <system_error>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace ikelb {

namespace asio = boost::asio;

std::optional<std::string> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return s.str();
}

// Owned by the watcher and by its pending handlers, so a handler that completes after the
// watcher is gone (operation_aborted) touches live memory.
struct ConfigWatcher::Impl : std::enable_shared_from_this<ConfigWatcher::Impl> {
  Impl(asio::io_context& io, std::string p, std::function<void()> c, std::chrono::milliseconds s)
      : path(std::move(p)), changed(std::move(c)), settle(s), events(io), timer(io) {}

  void read_events() {
    events.async_read_some(asio::buffer(buffer),
                           [self = shared_from_this()](boost::system::error_code ec, size_t) {
                             if (ec || self->stopped) return;  // closed: the watcher is gone
                             self->arm();
                             self->read_events();
                           });
  }

  // Every event (re)starts the settle timer: the content is read once things are quiet.
  void arm() {
    timer.expires_after(settle);
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec || self->stopped) return;
      auto now = read_whole_file(self->path);
      if (!now || *now == self->last) return;  // unreadable mid-swap, or nothing new
      self->last = *now;
      self->changed();
    });
  }

  std::string path;
  std::function<void()> changed;
  std::chrono::milliseconds settle;
  asio::posix::stream_descriptor events;
  asio::steady_timer timer;
  std::array<char, 4096> buffer{};
  std::string last;
  bool stopped = false;
};

ConfigWatcher::ConfigWatcher(asio::io_context& io, std::string path, std::function<void()> changed,
                             std::chrono::milliseconds settle)
    : impl_(std::make_shared<Impl>(io, std::move(path), std::move(changed), settle)) {}

ConfigWatcher::~ConfigWatcher() {
  impl_->stopped = true;
  boost::system::error_code ignored;
  impl_->timer.cancel();
  impl_->events.close(ignored);
}

void ConfigWatcher::start() {
  const std::string& path = impl_->path;
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "inotify_init1");
  // Creations and renames cover the ..data swap and rename-over; close-after-write covers an
  // in-place edit; deletions and attribute changes cover the rest (the content decides).
  if (inotify_add_watch(fd, dir.c_str(),
                        IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_DELETE |
                            IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
    int err = errno;
    ::close(fd);
    throw std::system_error(err, std::generic_category(),
                            "watching " + dir + " for config changes");
  }
  impl_->events.assign(fd);
  impl_->last = read_whole_file(path).value_or("");
  impl_->read_events();
}

}  // namespace ikelb
