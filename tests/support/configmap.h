// A directory laid out and updated the way the kubelet updates a ConfigMap volume: every key is
// a symlink `KEY -> ..data/KEY`; an update writes a new timestamped directory, points a
// `..data_tmp` symlink at it, renames that over `..data` (the one atomic step) and removes the
// previous directory. Used to test the agent's reload on change (--watch-config).
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

namespace ikelb::test {

class ConfigMapDir {
 public:
  explicit ConfigMapDir(std::filesystem::path dir) : dir_(std::move(dir)) {}

  // Publishes `text` as `key` (the first call creates the layout and the key's symlink).
  void update(const std::string& key, const std::string& text) {
    namespace fs = std::filesystem;
    fs::create_directories(dir_);
    std::string gen = "..2026_12_02_00_00_00." + std::to_string(++generation_);
    fs::create_directory(dir_ / gen);
    std::ofstream(dir_ / gen / key) << text;
    fs::create_symlink(gen, dir_ / "..data_tmp");
    fs::rename(dir_ / "..data_tmp", dir_ / "..data");
    if (!previous_.empty()) fs::remove_all(dir_ / previous_);
    previous_ = gen;
    if (!fs::is_symlink(dir_ / key)) fs::create_symlink("..data/" + key, dir_ / key);
  }

  std::filesystem::path path(const std::string& key) const { return dir_ / key; }

 private:
  std::filesystem::path dir_;
  std::string previous_;
  int generation_ = 0;
};

}  // namespace ikelb::test
