// Reload on change: watches the directory of the config file (inotify) and reports when the
// file's content, read through symlinks, differs from the content last seen.
//
// Why the directory: a Kubernetes ConfigMap mounted as a directory is updated by an atomic swap
// of its `..data` symlink (the file `ikelb.json -> ..data/ikelb.json` itself never changes), and
// editors often write a new file and rename it over the old one; a watch on the file would miss
// both. Events are coalesced for `settle` so that a multi-step update is read once complete, and
// the content comparison keeps unrelated files and no-op updates from causing reloads.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

namespace ikelb {

class ConfigWatcher {
 public:
  // `changed` runs on the io_context's thread.
  ConfigWatcher(boost::asio::io_context& io, std::string path, std::function<void()> changed,
                std::chrono::milliseconds settle = std::chrono::milliseconds(100));
  ~ConfigWatcher();
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  // Records the current content and starts watching. Throws std::system_error (e.g. the
  // directory does not exist or the inotify limit is reached).
  void start();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// The file's content, or nothing if it cannot be read (e.g. in the middle of a swap).
std::optional<std::string> read_whole_file(const std::string& path);

}  // namespace ikelb
