// Pinning benchmark threads to CPUs (netbench, microbench).
#pragma once

#include <pthread.h>
#include <sched.h>

#include <stdexcept>
#include <string>
#include <system_error>

namespace ikelb::bench {

inline void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (int rc = pthread_setaffinity_np(pthread_self(), sizeof set, &set); rc != 0)
    throw std::system_error(rc, std::generic_category(),
                            "pinning a thread to CPU " + std::to_string(cpu));
}

// Pins the calling thread to the first CPU it may run on, for a benchmark whose figures are
// compared with each other: the vCPUs of these VMs are often not equally fast, so a thread the
// scheduler moves between them would compare a run on one vCPU with a run on the other. Restores
// the thread's CPUs on destruction.
class PinnedToFirstCpu {
 public:
  PinnedToFirstCpu() {
    if (int rc = pthread_getaffinity_np(pthread_self(), sizeof saved_, &saved_); rc != 0)
      throw std::system_error(rc, std::generic_category(), "reading the thread's CPUs");
    while (cpu_ < CPU_SETSIZE && !CPU_ISSET(cpu_, &saved_)) cpu_++;
    if (cpu_ == CPU_SETSIZE) throw std::runtime_error("this thread may run on no CPU");
    pin_to_cpu(cpu_);
  }
  ~PinnedToFirstCpu() { pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_); }
  PinnedToFirstCpu(const PinnedToFirstCpu&) = delete;
  PinnedToFirstCpu& operator=(const PinnedToFirstCpu&) = delete;
  int cpu() const { return cpu_; }

 private:
  cpu_set_t saved_;
  int cpu_ = 0;
};

}  // namespace ikelb::bench
