#include "announcer.h"

#include <algorithm>

#include "log.h"

namespace ikelb {

AnnounceDecision decide_announce(const NodeFacts& node, const AnnounceInput& vs) {
  if (node.drained) return {false, "node drained by the operator"};
  if (!node.attached) return {false, "XDP is not attached on every configured interface"};
  if (!node.held.empty()) return {false, node.held};
  if (!vs.programmed) return {false, "no table in the data path yet"};
  const std::string counted = std::to_string(vs.in_table) + " backends in the table (at least " +
                              std::to_string(vs.min_healthy_backends) + " needed)";
  return {vs.in_table >= vs.min_healthy_backends, counted};
}

std::string not_ready_cause(const NodeFacts& node, const std::vector<AnnounceInput>& all) {
  if (all.empty()) return "no virtual server";
  for (const AnnounceInput& in : all)
    if (AnnounceDecision d = decide_announce(node, in); !d.announce) return in.vs + ": " + d.cause;
  return "";
}

AnnounceStatus& Announcer::entry(const AnnounceInput& in) {
  for (auto& st : status_)
    if (st.vs == in.vs) {
      st.protocol = in.protocol;
      return st;
    }
  AnnounceStatus st;
  st.vs = in.vs;
  st.protocol = in.protocol;
  status_.push_back(st);
  return status_.back();
}

void Announcer::failed(AnnounceStatus& st, const std::string& what) {
  errors_++;
  st.errors++;
  st.announced.reset();
  st.bird_state.clear();
  if (what != st.last_error)
    log_warning("announce " + st.vs + " (bird protocol " + st.protocol + "): " + what);
  st.last_error = what;
}

void Announcer::apply(AnnounceStatus& st, bool want, const std::string& cause) {
  std::string state;
  try {
    state = bird_.state(st.protocol);
  } catch (const BirdError& e) {
    failed(st, e.what());
    return;
  }
  const bool up = state == "up";
  if (!st.last_error.empty())
    log_info("announce " + st.vs + ": bird answers again (protocol " + st.protocol + " " + state +
             ")");
  st.last_error.clear();
  st.bird_state = state;
  st.announced = up;
  if (up == want) {
    st.last_set = want;
    return;
  }
  try {
    bird_.set_enabled(st.protocol, want);
  } catch (const BirdError& e) {
    failed(st, e.what());
    return;
  }
  (want ? st.announces : st.withdraws)++;
  // Changed behind this agent's back (birdc, a bird restart): say so.
  std::string found = st.last_set && *st.last_set == want
                          ? " (bird had it " + state + ": changed outside ikelbd)"
                          : "";
  st.last_set = want;
  log_info(std::string(want ? "announce " : "withdraw ") + st.vs + " (bird protocol " +
           st.protocol + "): " + cause + found);
  try {
    st.bird_state = bird_.state(st.protocol);
    st.announced = st.bird_state == "up";
  } catch (const BirdError& e) {
    failed(st, e.what());
  }
}

void Announcer::reconcile(const NodeFacts& node, const std::vector<AnnounceInput>& inputs) {
  std::erase_if(status_, [&](const AnnounceStatus& st) {
    return std::none_of(inputs.begin(), inputs.end(),
                        [&](const AnnounceInput& in) { return in.vs == st.vs; });
  });
  for (const AnnounceInput& in : inputs) {
    AnnounceStatus& st = entry(in);
    AnnounceDecision d = decide_announce(node, in);
    st.wanted = d.announce;
    st.cause = d.cause;
    apply(st, d.announce, d.cause);
  }
}

std::vector<std::string> Announcer::withdraw_all(const std::vector<AnnounceInput>& inputs,
                                                 const std::string& cause) {
  std::vector<std::string> errors;
  for (const AnnounceInput& in : inputs) {
    AnnounceStatus& st = entry(in);
    st.wanted = false;
    st.cause = cause;
    apply(st, false, cause);
    if (!st.last_error.empty()) errors.push_back(in.vs + ": " + st.last_error);
  }
  return errors;
}

}  // namespace ikelb
