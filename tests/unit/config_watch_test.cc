// ConfigWatcher on a real directory (no root): the kubelet's ConfigMap update (a `..data`
// symlink swap), an editor's rename-over and in-place writes are seen once each; unrelated files
// and rewrites with the same content are not.
#include "config_watch.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "configmap.h"

namespace ikelb {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class ConfigWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ikelb-watch-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    configmap_.emplace(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static void write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

  // Runs the loop until `calls_` reaches `want` or `limit` passes; then a little longer, so
  // that an extra call would be seen.
  void run_until(int want, std::chrono::milliseconds limit = 5s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (calls_ < want && std::chrono::steady_clock::now() < deadline) io_.run_for(20ms);
    io_.run_for(300ms);
  }

  std::unique_ptr<ConfigWatcher> watch(const fs::path& file) {
    auto w = std::make_unique<ConfigWatcher>(
        io_, file.string(), [this] { calls_++; }, std::chrono::milliseconds(50));
    w->start();
    return w;
  }

  void configmap_update(const std::string& text) { configmap_->update("ikelb.json", text); }

  fs::path dir_;
  std::optional<test::ConfigMapDir> configmap_;
  boost::asio::io_context io_;
  int calls_ = 0;
};

TEST_F(ConfigWatchTest, ConfigMapSymlinkSwap) {
  configmap_update("{\"v\": 1}");
  auto w = watch(dir_ / "ikelb.json");
  run_until(0, 0ms);
  EXPECT_EQ(calls_, 0) << "starting is not a change";

  configmap_update("{\"v\": 2}");
  run_until(1);
  EXPECT_EQ(calls_, 1) << "one swap, one change";

  configmap_update("{\"v\": 2}");  // the kubelet re-syncs with the same content
  run_until(2, 500ms);
  EXPECT_EQ(calls_, 1) << "the same content is not a change";

  write(dir_ / "other.json", "x");  // another key of the ConfigMap, say
  run_until(2, 500ms);
  EXPECT_EQ(calls_, 1);

  configmap_update("{\"v\": 3}");
  run_until(2);
  EXPECT_EQ(calls_, 2);
}

TEST_F(ConfigWatchTest, InPlaceWriteAndRenameOver) {
  write(dir_ / "ikelb.json", "a");
  auto w = watch(dir_ / "ikelb.json");
  write(dir_ / "ikelb.json", "b");
  run_until(1);
  EXPECT_EQ(calls_, 1);

  write(dir_ / "ikelb.json.tmp", "c");
  fs::rename(dir_ / "ikelb.json.tmp", dir_ / "ikelb.json");
  run_until(2);
  EXPECT_EQ(calls_, 2);

  fs::remove(dir_ / "ikelb.json");  // gone: nothing to load, no call
  run_until(3, 500ms);
  EXPECT_EQ(calls_, 2);
  write(dir_ / "ikelb.json", "c");  // back with the content last seen
  run_until(3, 500ms);
  EXPECT_EQ(calls_, 2);
}

TEST_F(ConfigWatchTest, MissingDirectoryFailsToStart) {
  ConfigWatcher w(io_, (dir_ / "nope" / "ikelb.json").string(), [] {});
  EXPECT_THROW(w.start(), std::system_error);
}

}  // namespace
}  // namespace ikelb
