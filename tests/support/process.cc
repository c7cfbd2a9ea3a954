#include "process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

extern char** environ;

namespace ikelb::test {

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// finish_command() with the wait and the timeout it reports given apart (run_commands() waits for
// each process only what is left of the shared deadline).
RunResult finish(pid_t pid, const std::string& out_path, std::chrono::milliseconds wait,
                 std::chrono::milliseconds timeout) {
  std::optional<int> status = wait_exit(pid, std::max(wait, 0ms));
  if (!status) {
    kill(pid, SIGKILL);
    wait_exit(pid, 5s);
  }
  RunResult r;
  r.output = read_file(out_path);
  std::error_code ec;
  std::filesystem::remove(out_path, ec);
  if (!status)
    r.output += "\n[timed out after " + std::to_string(timeout.count()) + " ms]";
  else if (WIFEXITED(*status))
    r.exit_code = WEXITSTATUS(*status);
  return r;
}

}  // namespace

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string tail(const std::string& text, size_t max) {
  return text.size() <= max ? text : "..." + text.substr(text.size() - max);
}

std::string join(const Argv& argv, const std::string& sep) {
  std::string out;
  for (const auto& a : argv) out += (out.empty() ? "" : sep) + a;
  return out;
}

pid_t spawn(const Argv& argv, const std::string& out_path) {
  if (argv.empty()) throw std::runtime_error("cannot start an empty command");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + join(argv) + ": " + std::strerror(rc));
  return pid;
}

std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -1;  // not our child any more
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

void stop_process(pid_t pid, std::chrono::milliseconds grace) {
  if (pid <= 0) return;
  if (kill(pid, SIGTERM) != 0) {
    waitpid(pid, nullptr, WNOHANG);
    return;
  }
  if (!wait_exit(pid, grace)) {
    kill(pid, SIGKILL);
    wait_exit(pid, 5s);
  }
}

RunResult finish_command(pid_t pid, const std::string& out_path,
                         std::chrono::milliseconds timeout) {
  return finish(pid, out_path, timeout, timeout);
}

RunResult run_command(const Argv& argv, const std::string& out_path,
                      std::chrono::milliseconds timeout) {
  pid_t pid = 0;
  try {
    pid = spawn(argv, out_path);
  } catch (const std::exception& e) {
    std::error_code ec;
    std::filesystem::remove(out_path, ec);
    return {-1, e.what()};
  }
  return finish_command(pid, out_path, timeout);
}

std::vector<RunResult> run_commands(const std::vector<Argv>& commands,
                                    const std::string& out_prefix,
                                    std::chrono::milliseconds timeout) {
  std::vector<RunResult> results(commands.size());
  std::vector<std::pair<pid_t, std::string>> started;  // pid (-1: not started), output file
  for (size_t i = 0; i < commands.size(); i++) {
    std::string out = out_prefix + std::to_string(i) + ".out";
    try {
      started.emplace_back(spawn(commands[i], out), out);
    } catch (const std::exception& e) {
      started.emplace_back(-1, out);
      results[i].output = e.what();
      std::error_code ec;
      std::filesystem::remove(out, ec);
    }
  }
  const auto deadline = Clock::now() + timeout;
  for (size_t i = 0; i < started.size(); i++) {
    const auto& [pid, out] = started[i];
    if (pid < 0) continue;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    results[i] = finish(pid, out, left, timeout);
  }
  return results;
}

std::string output_or_throw(const Argv& argv, const RunResult& r) {
  if (r.exit_code != 0)
    throw std::runtime_error("`" + join(argv) + "` failed (exit " + std::to_string(r.exit_code) +
                             "): " + r.output);
  return r.output;
}

}  // namespace ikelb::test
