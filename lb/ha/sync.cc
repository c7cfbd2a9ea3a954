#include "sync.h"

#include <algorithm>
#include <bit>
#include <exception>

#include "ikelb_abi.h"
#include "log.h"

namespace ikelb {

std::string SyncEndpoint::str() const {
  const std::string a = address.str();
  return (address.family == IKELB_AF_INET6 ? "[" + a + "]" : a) + ":" + std::to_string(port);
}

std::string_view to_string(SyncSnapshot s) {
  switch (s) {
    case SyncSnapshot::kNotNeeded:
      return "not_needed";
    case SyncSnapshot::kWaiting:
      return "waiting";
    case SyncSnapshot::kReceived:
      return "received";
    case SyncSnapshot::kTimedOut:
      return "timed_out";
  }
  return "unknown";
}

SyncNode::SyncNode(SyncSettings settings, SyncClock& clock, SyncSender& sender, SyncStore& store)
    : settings_(std::move(settings)), clock_(clock), sender_(sender), store_(store) {
  seq_ = clock_.unix_ms() * 1000;
  mark_ns_ = threshold_ns_ = refilled_ns_ = clock_.mono_ns();
}

void SyncNode::configure(SyncSettings settings) {
  settings_ = std::move(settings);
  while (queue_.size() > settings_.queue_records) {
    queue_.pop_front();
    stats_.dropped["queue_full"]++;
  }
  std::erase_if(serving_, [&](const Serving& s) {
    return std::find(settings_.peers.begin(), settings_.peers.end(), s.to) == settings_.peers.end();
  });
  stats_.queue_depth = queue_.size();
}

uint64_t SyncNode::next_seq(size_t datagrams) {
  const uint64_t first = seq_;
  seq_ += datagrams;
  return first;
}

bool SyncNode::live(uint64_t last_seen_ns, uint64_t now_ns) const {
  return settings_.idle_ns == 0 || last_seen_ns >= now_ns ||
         now_ns - last_seen_ns <= settings_.idle_ns;
}

void SyncNode::start() {
  const uint64_t now = clock_.mono_ns();
  started_ns_ = now;
  if (!settings_.snapshot_on_join) return;
  bool empty = true;
  SyncStore::Cursor c;
  try {
    store_.walk(c, 256, [&](const SyncEntry&) { empty = false; });
  } catch (const std::exception& e) {
    log_warning(std::string("sync: cannot read the affinity table: ") + e.what());
    return;
  }
  if (!empty) return;
  send_control(kSyncSnapshotRequest, settings_.peers);
  requested_ns_ = now;
  if (settings_.snapshot_timeout_ms == 0) return;
  stats_.snapshot = SyncSnapshot::kWaiting;
  deadline_ns_ = now + uint64_t(settings_.snapshot_timeout_ms) * 1'000'000;
  log_info("sync: empty affinity table: asked " + std::to_string(settings_.peers.size()) +
           " peers for a snapshot; not announcing until it ends or " +
           std::to_string(settings_.snapshot_timeout_ms) + " ms passed");
}

bool SyncNode::holding() {
  if (stats_.snapshot != SyncSnapshot::kWaiting) return false;
  if (clock_.mono_ns() >= deadline_ns_) snapshot_done(SyncSnapshot::kTimedOut);
  return stats_.snapshot == SyncSnapshot::kWaiting;
}

void SyncNode::snapshot_done(SyncSnapshot how) {
  if (stats_.snapshot != SyncSnapshot::kWaiting) return;
  stats_.snapshot = how;
  stats_.snapshot_ms = (clock_.mono_ns() - started_ns_) / 1'000'000;
  const std::string took = std::to_string(*stats_.snapshot_ms) + " ms after start, " +
                           std::to_string(stats_.snapshot_records) + " records";
  if (how == SyncSnapshot::kReceived)
    log_info("sync: snapshot received: " + took);
  else
    log_warning("sync: no snapshot from any peer within " +
                std::to_string(settings_.snapshot_timeout_ms) + " ms (" + took +
                "): announcing without it");
  if (on_snapshot_done) on_snapshot_done();
}

void SyncNode::begin_round() {
  const uint64_t now = clock_.mono_ns();
  const double rate = settings_.max_records_per_second;
  const double burst = rate * std::max<uint32_t>(settings_.interval_ms, 1000) / 1000.0;
  tokens_ = std::min(burst, tokens_ + rate * double(now - refilled_ns_) / 1e9);
  refilled_ns_ = now;
  if (holding() && now - requested_ns_ >= uint64_t(settings_.interval_ms) * 1'000'000) {
    send_control(kSyncSnapshotRequest, settings_.peers);  // the first may have been lost
    requested_ns_ = now;
  }
  if (!walking_) {
    walking_spi_ = false;
    threshold_ns_ = mark_ns_;
    mark_ns_ = now;
    cursor_ = {};
    walking_ = true;
  }
}

std::optional<std::pair<std::string, std::string>> SyncNode::names_of(uint32_t vs_id,
                                                                      uint32_t backend_id) {
  auto n = store_.names(vs_id, backend_id);
  if (!n) stats_.dropped["unnamed"]++;
  return n;
}

std::optional<SyncNode::Queued> SyncNode::named(const SyncEntry& e) {
  auto n = names_of(e.vs_id, e.backend_id);
  if (!n) return std::nullopt;
  SyncAffinity r{std::move(n->first), std::move(n->second), e.client};
  return Queued{std::move(r), e.last_seen_ns};
}

std::optional<SyncNode::Queued> SyncNode::named(const SyncSpiEntry& e) {
  auto n = names_of(e.vs_id, e.backend_id);
  if (!n) return std::nullopt;
  SyncSpiOwner r;
  r.vs = std::move(n->first);
  r.backend = std::move(n->second);
  r.kind = e.kind;
  r.spi = e.spi;
  return Queued{std::move(r), e.last_seen_ns};
}

bool SyncNode::walk(SyncStore::Cursor& cursor, bool spi, uint32_t max,
                    const std::function<void(Queued)>& visit, uint64_t after_ns) {
  const uint64_t now = clock_.mono_ns();
  if (spi)
    return store_.walk_spi(cursor, max, [&](const SyncSpiEntry& e) {
      if (e.last_seen_ns > after_ns)
        if (auto q = named(e)) visit(std::move(*q));
    });
  // A provisional entry (a source that has sent only IKE_SA_INIT under an IKE_SA_INIT limit) is
  // not sent: a spoofed flood would otherwise spread over every node, and arrive there without
  // the flag, exempt from the limit. It is sent once the gateway answered beyond IKE_SA_INIT
  // (the data path clears the flag) and the client's traffic refreshed it.
  return store_.walk(cursor, max, [&](const SyncEntry& e) {
    if (e.last_seen_ns > after_ns && live(e.last_seen_ns, now) &&
        !(e.flags & IKELB_AFFINITY_PROVISIONAL))
      if (auto q = named(e)) visit(std::move(*q));
  });
}

void SyncNode::enqueue(Queued q) {
  if (queue_.size() >= settings_.queue_records) {
    queue_.pop_front();
    stats_.dropped["queue_full"]++;
  }
  queue_.push_back(std::move(q));
}

bool SyncNode::step() {
  if (walking_) {
    bool more = false;
    try {
      more = walk(
          cursor_, walking_spi_, settings_.walk_batch, [&](Queued q) { enqueue(std::move(q)); },
          threshold_ns_);
    } catch (const std::exception& e) {
      log_warning(std::string("sync: walking the ") +
                  (walking_spi_ ? "learned SPI owners: " : "affinity table: ") + e.what());
    }
    stats_.queue_depth = queue_.size();
    if (more) return true;
    if (!walking_spi_) {
      walking_spi_ = true;
      cursor_ = {};
      return true;
    }
    walking_ = walking_spi_ = false;
  }
  if (!queue_.empty() && tokens_ >= 1 && !settings_.peers.empty()) {
    const size_t n = std::min(queue_.size(), size_t(tokens_));
    std::vector<Queued> batch(std::make_move_iterator(queue_.begin()),
                              std::make_move_iterator(queue_.begin() + long(n)));
    queue_.erase(queue_.begin(), queue_.begin() + long(n));
    tokens_ -= double(n);
    send_records(std::move(batch), settings_.peers);
    stats_.queue_depth = queue_.size();
  }
  return serve_snapshots();
}

bool SyncNode::serve_snapshots() {
  for (auto it = serving_.begin(); it != serving_.end() && tokens_ >= 1;) {
    std::vector<Queued> batch;
    bool more = false;
    const uint32_t max = std::min<uint32_t>(settings_.walk_batch, uint32_t(tokens_));
    try {
      more = walk(
          it->cursor, it->spi, max, [&](Queued q) { batch.push_back(std::move(q)); }, 0);
    } catch (const std::exception& e) {
      log_warning(std::string("sync: walking the affinity table for a snapshot: ") + e.what());
      more = false;
    }
    // A hash-map batch is whole buckets and may exceed `max` slightly: the budget goes negative
    // and the next round pays for it.
    tokens_ -= double(batch.size());
    send_records(std::move(batch), {it->to});
    if (more) return tokens_ >= 1;
    if (!it->spi) {
      it->spi = true;
      it->cursor = {};
      continue;
    }
    send_control(kSyncSnapshotEnd, {it->to});
    stats_.snapshots_served++;
    log_info("sync: snapshot sent to " + it->to.str());
    it = serving_.erase(it);
  }
  return false;
}

void SyncNode::send_records(std::vector<Queued> batch, const std::vector<SyncEndpoint>& to) {
  if (batch.empty()) return;
  const uint64_t now = clock_.mono_ns();
  std::vector<SyncAffinity> records;
  std::vector<SyncSpiOwner> owners;
  for (Queued& q : batch) {
    const uint64_t age = q.last_seen_ns >= now ? 0 : (now - q.last_seen_ns) / 1'000'000;
    const auto age_ms = static_cast<uint32_t>(std::min<uint64_t>(age, UINT32_MAX));
    if (auto* a = std::get_if<SyncAffinity>(&q.record)) {
      a->age_ms = age_ms;
      records.push_back(std::move(*a));
    } else {
      auto& o = std::get<SyncSpiOwner>(q.record);
      o.age_ms = age_ms;
      owners.push_back(std::move(o));
    }
  }
  SyncHeader h{
      .type = kSyncRecords, .sender = settings_.node_id, .seq = 0, .sent_ms = clock_.unix_ms()};
  std::vector<std::vector<uint8_t>> datagrams;
  try {
    h.seq = seq_;
    datagrams = encode_sync(h, records, owners, settings_.key);
  } catch (const std::exception& e) {  // a name over 255 bytes cannot happen (config names)
    log_error(std::string("sync: encoding: ") + e.what());
    stats_.dropped["store_error"] += batch.size();
    return;
  }
  next_seq(datagrams.size());
  stats_.records_sent += batch.size();
  for (const SyncEndpoint& peer : to)
    for (const auto& d : datagrams)
      (sender_.send(peer, d) ? stats_.datagrams_sent : stats_.send_errors)++;
}

void SyncNode::send_control(uint8_t type, const std::vector<SyncEndpoint>& to) {
  SyncHeader h{
      .type = type, .sender = settings_.node_id, .seq = next_seq(1), .sent_ms = clock_.unix_ms()};
  auto datagrams = encode_sync(h, {}, settings_.key);
  for (const SyncEndpoint& peer : to)
    for (const auto& d : datagrams)
      (sender_.send(peer, d) ? stats_.datagrams_sent : stats_.send_errors)++;
}

void SyncNode::refuse(const std::string& reason, const SyncEndpoint& from,
                      const std::string& detail) {
  const uint64_t n = ++stats_.refused[reason];
  if (std::has_single_bit(n))  // the 1st, 2nd, 4th, ... of each reason: a bounded log
    log_warning("sync: datagram from " + from.str() + " refused (" + reason + ", " +
                std::to_string(n) + " so far): " + detail);
}

void SyncNode::receive(const SyncEndpoint& from, std::span<const uint8_t> datagram) {
  stats_.datagrams_received++;
  if (std::find(settings_.peers.begin(), settings_.peers.end(), from) == settings_.peers.end())
    return refuse("unknown_peer", from, "not a configured peer");
  auto decoded = decode_sync(datagram, settings_.key);
  if (auto* why = std::get_if<std::string>(&decoded))
    return refuse(why->starts_with("bad MAC") ? "bad_mac" : "malformed", from, *why);
  SyncMessage& m = std::get<SyncMessage>(decoded);
  if (m.header.sender == settings_.node_id)
    return refuse("own_node", from,
                  "carries this node's id " + std::to_string(m.header.sender) +
                      " (two nodes with one sync.node_id?)");
  if (std::string why = replay_.accept(m.header, clock_.unix_ms()); !why.empty())
    return refuse("replay", from, why);

  const uint64_t now = clock_.mono_ns();
  switch (m.header.type) {
    case kSyncRecords:
      stats_.records_received += m.affinity.size() + m.spi_owners.size();
      if (stats_.snapshot == SyncSnapshot::kWaiting)
        stats_.snapshot_records += m.affinity.size() + m.spi_owners.size();
      for (const SyncAffinity& r : m.affinity) merge(r, now);
      for (const SyncSpiOwner& r : m.spi_owners) merge(r, now);
      break;
    case kSyncSnapshotRequest:
      if (holding()) break;  // this node's table is not complete yet
      if (std::none_of(serving_.begin(), serving_.end(),
                       [&](const Serving& s) { return s.to == from; })) {
        serving_.push_back({from, {}});
        log_info("sync: " + from.str() + " asks for a snapshot");
      }
      break;
    case kSyncSnapshotEnd:
      if (stats_.snapshot == SyncSnapshot::kWaiting) {
        log_info("sync: snapshot end from " + from.str());
        snapshot_done(SyncSnapshot::kReceived);
      }
      break;
  }
}

void SyncNode::merge(const SyncAffinity& r, uint64_t now) {
  try {
    std::optional<SyncTarget> t = store_.target(r.vs, r.backend);
    std::optional<SyncEntry> local;
    if (t) local = store_.find(t->vs_id, r.client);
    if (local && !live(local->last_seen_ns, now)) local.reset();  // expired: as if absent
    std::optional<uint32_t> local_age;
    if (local)
      local_age = static_cast<uint32_t>(std::min<uint64_t>(
          local->last_seen_ns >= now ? 0 : (now - local->last_seen_ns) / 1'000'000, UINT32_MAX));
    switch (sync_merge(local_age, r.age_ms, t ? std::optional<bool>(t->serving) : std::nullopt)) {
      case SyncMerge::kUnknownTarget:
        stats_.dropped["unknown_target"]++;
        return;
      case SyncMerge::kNotServing:
        stats_.dropped["not_serving"]++;
        return;
      case SyncMerge::kKeepLocal:
        stats_.kept_local++;
        return;
      case SyncMerge::kInsert:
        break;
    }
    SyncEntry e;
    e.vs_id = t->vs_id;
    e.backend_id = t->backend_id;
    e.client = r.client;
    const uint64_t age_ns = uint64_t(r.age_ms) * 1'000'000;
    e.last_seen_ns = std::min(age_ns < now ? now - age_ns : 0, mark_ns_);
    if (local && local->backend_id == e.backend_id) {
      e.flags = local->flags;
      e.last_seen_ns = std::max(e.last_seen_ns, local->last_seen_ns);
    }
    if (store_.write(e, !local))
      stats_.merged++;
    else
      stats_.kept_local++;  // the data path created one meanwhile: it is fresher
  } catch (const std::exception& e) {
    stats_.dropped["store_error"]++;
    log_warning(std::string("sync: merging a record: ") + e.what());
  }
}

void SyncNode::merge(const SyncSpiOwner& r, uint64_t now) {
  try {
    std::optional<SyncTarget> t = store_.target(r.vs, r.backend);
    if (!t) {
      stats_.dropped["unknown_target"]++;
      return;
    }
    if (!t->serving) {
      stats_.dropped["not_serving"]++;
      return;
    }
    SyncSpiEntry e;
    e.vs_id = t->vs_id;
    e.backend_id = t->backend_id;
    e.kind = r.kind;
    e.spi = r.spi;
    const uint64_t age_ns = uint64_t(r.age_ms) * 1'000'000;
    e.last_seen_ns = std::min(age_ns < now ? now - age_ns : 0, mark_ns_);
    if (store_.add_spi(e)) {
      stats_.merged++;
      stats_.spi_merged++;
    } else {
      stats_.kept_local++;  // the SPI has an owner here: never overwritten
    }
  } catch (const std::exception& e) {
    stats_.dropped["store_error"]++;
    log_warning(std::string("sync: merging an SPI owner: ") + e.what());
  }
}

}  // namespace ikelb
