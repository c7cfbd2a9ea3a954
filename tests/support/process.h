// Child processes for the netns tests and the benches: start a command with its output in a file,
// wait for it with a timeout, stop it, or run it to the end and collect its exit code and output.
// Test-only: no shell, no quoting; every function is meant to be called from one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace ikelb::test {

using Argv = std::vector<std::string>;

// The whole content of the file at `path`; empty if it cannot be read.
std::string read_file(const std::string& path);

// `text` if it has at most `max` characters, else "..." and its last `max` characters.
std::string tail(const std::string& text, size_t max = 4000);

// The elements of `argv` separated by `sep` (for messages: nothing is quoted).
std::string join(const Argv& argv, const std::string& sep = " ");

// Starts argv[0] (looked up in PATH) with stdin from /dev/null and stdout and stderr appended to
// `out_path` (created if missing). Throws std::runtime_error if it cannot be started.
pid_t spawn(const Argv& argv, const std::string& out_path);

// Waits up to `timeout` (polling every 5 ms) for `pid`, a child of this process, to exit: its wait
// status, nullopt if it still runs, or -1 if it is not (any more) a child to wait for.
std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout);

// SIGTERM, up to `grace` for it to exit, then SIGKILL; always reaps. Nothing for pid <= 0.
void stop_process(pid_t pid, std::chrono::milliseconds grace = std::chrono::milliseconds(500));

struct RunResult {
  int exit_code = -1;  // -1: killed by a signal, timed out, or could not be started
  std::string output;  // stdout and stderr, or why it could not be started
};

// Waits up to `timeout` for `pid`, which writes to `out_path`, and SIGKILLs it if it still runs
// then. The result has the file's content, with "[timed out after N ms]" appended on a timeout;
// the file is removed. For a process started by other means than spawn().
RunResult finish_command(pid_t pid, const std::string& out_path, std::chrono::milliseconds timeout);

// Runs `argv` (spawn()) with its output in `out_path`, a file of its own, and waits for it as
// finish_command() does.
RunResult run_command(const Argv& argv, const std::string& out_path,
                      std::chrono::milliseconds timeout);

// Starts every command at once, command i with its output in out_prefix + i + ".out", and waits
// for all of them; `timeout` is one deadline for the whole set. One result per command, in order.
std::vector<RunResult> run_commands(const std::vector<Argv>& commands,
                                    const std::string& out_prefix,
                                    std::chrono::milliseconds timeout);

// The output of `r` if it exited 0; otherwise throws std::runtime_error with the command `argv`,
// its exit code and its output.
std::string output_or_throw(const Argv& argv, const RunResult& r);

}  // namespace ikelb::test
