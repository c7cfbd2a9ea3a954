#include "agent.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <prometheus/exposer.h>
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <set>

#include "admin_api.h"
#include "admin_http.h"
#include "announcer.h"
#include "config_watch.h"
#include "controller.h"
#include "datapath.h"
#include "health_api.h"
#include "log.h"
#include "metrics.h"
#include "prober.h"
#include "service_notify.h"
#include "sync.h"
#include "sync_datapath.h"
#include "sync_socket.h"

namespace ikelb {
namespace {

namespace asio = boost::asio;

// Maglev map size: room for every virtual server's two halves twice over, so a reload can
// move tables to fresh regions (a size change) without a teardown.
uint32_t table_slots_for(const Config& config) {
  uint64_t need = 0;
  for (const auto& vs : config.virtual_servers) need += 2ull * vs.maglev_table_size;
  return static_cast<uint32_t>(std::max<uint64_t>(IKELB_DEFAULT_TABLE_SLOTS, 2 * need));
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Every address of this network namespace: probe answers addressed to them must reach the
// prober untranslated.
std::vector<IpAddress> host_addresses() {
  std::vector<IpAddress> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    IpAddress a;
    if (i->ifa_addr->sa_family == AF_INET) {
      a.family = IKELB_AF_INET;
      std::memcpy(&a.addr.u32[0], &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      a.family = IKELB_AF_INET6;
      std::memcpy(a.addr.u32, &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  freeifaddrs(list);
  return out;
}

std::string read_token(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read admin token file " + path);
  std::string token;
  std::getline(in, token);
  if (token.empty()) throw std::runtime_error("admin token file " + path + " is empty");
  return token;
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

nlohmann::json probe_json(const ike::SessionStatus& st, ProbeMode mode) {
  return {{"mode", to_string(mode)},
          {"healthy", st.healthy},
          {"last_result", st.last_result},
          {"warning", st.warning},
          {"rtt_ms", st.rtt ? nlohmann::json(st.rtt->count()) : nlohmann::json(nullptr)},
          {"consecutive_ok", st.consecutive_ok},
          {"consecutive_fail", st.consecutive_fail},
          {"preferred_group",
           st.preferred_group ? nlohmann::json(*st.preferred_group) : nlohmann::json(nullptr)},
          {"probes", st.probes},
          {"retransmits", st.retransmits}};
}

class Agent {
 public:
  Agent(const AgentOptions& options, Config config)
      : options_(options),
        config_(std::move(config)),
        signals_(io_, SIGINT, SIGTERM, SIGHUP),
        scan_timer_(io_),
        announce_timer_(io_),
        sync_timer_(io_) {}

  int run() {
    LogLevel level;
    if (parse_log_level(config_.log_level, level)) set_log_level(level);
    auto missing = check_interfaces(
        config_, [](const std::string& n) { return if_nametoindex(n.c_str()) != 0; });
    if (!missing.empty()) {
      for (const auto& e : missing) log_error(e.str());
      return 1;
    }
    if (config_.sync)  // before anything is attached: a bad key file changes nothing
      if (auto key = read_sync_key(*config_.sync); std::holds_alternative<ConfigError>(key)) {
        log_error(std::get<ConfigError>(key).str());
        return 1;
      }

    datapath_ = std::make_unique<Datapath>(
        Datapath::Options{.table_slots = table_slots_for(config_),
                          .affinity_entries = config_.affinity_max_entries,
                          .pin_dir = config_.bpffs});
    for (const auto& note : datapath_->notes()) log_warning(note);
    adopted_ = !datapath_->adopted_maps().empty();
    controller_ = std::make_unique<Controller>(*datapath_, clock_);
    if (std::string adopted = controller_->adopt(); !adopted.empty()) log_info(adopted);
    if (auto errors = controller_->apply(config_); !errors.empty()) {
      for (const auto& e : errors) log_error(e);
      return 1;
    }
    sync_interfaces();
    datapath_->set_local_addresses(host_addresses());
    prober_ =
        std::make_unique<Prober>(io_, [this](uint32_t id, bool healthy, const std::string& cause) {
          if (controller_->set_health(id, healthy, "probe: " + cause))
            asio::post(io_, [this] { announce_round(); });
        });
    sync_probes();
    if (std::string error = configure_sync(); !error.empty()) {
      log_error(error);
      return 1;
    }
    record_reload(true, {});

    AdminServerOptions admin;
    admin.unix_path = config_.admin_socket;
    if (config_.admin_tcp_listen) {
      admin.tcp_listen = config_.admin_tcp_listen;
      admin.bearer_token = read_token(*config_.admin_token_file);
    }
    server_ = std::make_unique<AdminServer>(io_, admin, [this](const AdminRequest& r) {
      return route_admin(r, *controller_, hooks());
    });
    server_->start();
    if (config_.health_listen) {
      AdminServerOptions health;
      health.tcp_listen = config_.health_listen;
      health.tcp_open = true;
      health_ = std::make_unique<AdminServer>(io_, health, [this](const AdminRequest& r) {
        return route_health(r, [this] { return readiness_problems(); });
      });
      try {
        health_->start();
      } catch (const std::exception& e) {
        throw std::runtime_error("health listener " + *config_.health_listen + ": " + e.what());
      }
    }
    if (options_.watch_config) {
      watcher_ = std::make_unique<ConfigWatcher>(io_, options_.config_path,
                                                 [this] { reload("config file changed"); });
      watcher_->start();
    }
    if (config_.metrics_listen) {
      metrics_ = std::make_shared<SnapshotCollectable>([this] { return take_snapshot(); });
      try {
        exposer_ = std::make_unique<prometheus::Exposer>(*config_.metrics_listen, 1);
      } catch (const std::exception& e) {
        throw std::runtime_error("metrics listener " + *config_.metrics_listen + ": " + e.what());
      }
      exposer_->RegisterCollectable(metrics_);
    }
    log_info("ready: " + summary(config_) + ", admin socket " + config_.admin_socket +
             (adopted_ ? ", pinned state adopted" : ""));
    // XDP is attached and the tables are written: systemd may consider the start done.
    notify("READY=1\nSTATUS=" + summary(config_));

    wait_signal();
    schedule_scan(std::chrono::milliseconds(0));
    sync_announce();
    io_.run();
    return exit_code_;
  }

 private:
  // Runs on the exposer's thread: the snapshot itself is taken on the loop thread, so it never
  // races with the loop's writes. Gives up after 5 s (a stuck loop yields a scrape error).
  std::optional<MetricsSnapshot> take_snapshot() {
    auto promise = std::make_shared<std::promise<MetricsSnapshot>>();
    auto future = promise->get_future();
    asio::post(io_, [this, promise] {
      try {
        promise->set_value(snapshot());
      } catch (...) {
        promise->set_exception(std::current_exception());
      }
    });
    if (future.wait_for(std::chrono::seconds(5)) != std::future_status::ready) return std::nullopt;
    return future.get();
  }

  // Ready = XDP attached to every configured interface and the config's tables written (the
  // first apply succeeded before any listener started, and a rejected reload leaves the running
  // tables in place). Also not ready once a teardown has begun.
  std::vector<std::string> readiness_problems() {
    if (tearing_down_) return {"tearing down"};
    return datapath_->link_problems(config_.interfaces);
  }

  MetricsSnapshot snapshot() {
    MetricsSnapshot s;
    std::map<std::string, size_t> healthy;
    for (const BackendView& b : controller_->backends()) {
      BackendMetrics m;
      m.vs = b.vs;
      m.name = b.name;
      m.state = b.state;
      m.stats = datapath_->backend_stats(b.id);
      m.pinned_clients = b.pinned_clients;
      m.state_changes = b.changes;
      if (prober_) m.probe = prober_->status(b.id);
      healthy[b.vs] += b.state == "active" || b.state == "draining" || b.state == "drained";
      s.backends.push_back(std::move(m));
    }
    for (const VirtualServerView& v : controller_->virtual_servers())
      s.virtual_servers.push_back({v.name, datapath_->vs_traffic(v.id), healthy[v.name],
                                   datapath_->vs_edge_stats(v.id),
                                   fingerprint_metric_value(v.fingerprint)});
    s.outcomes = datapath_->outcomes();
    s.events = datapath_->events();
    s.affinity_entries = affinity_entries_;
    s.spi_owner_entries = spi_owner_entries_;
    s.affinity_capacity = datapath_->affinity_capacity();
    s.reloads_ok = reloads_ok_;
    s.reloads_rejected = reloads_rejected_;
    s.last_reload_success_seconds =
        std::chrono::duration<double>(last_success_.time_since_epoch()).count();
    s.version = IKELB_VERSION;
    s.bpf_prog_id = datapath_->prog_id();
    s.node_drained = drained_;
    s.node_ready = not_ready_cause(node_facts(), node_inputs(false)).empty();
    if (sync_) s.sync = sync_->stats();
    s.announce_configured = announcer_ != nullptr;
    if (announcer_) {
      s.announce_errors = announcer_->errors();
      for (const AnnounceStatus& st : announcer_->status())
        s.announce.push_back({st.vs, st.wanted, st.announced, st.announces, st.withdraws});
    }
    for (const auto& vs : config_.virtual_servers)  // not announced by ikelbd: 0
      if (std::none_of(s.announce.begin(), s.announce.end(),
                       [&](const AnnounceMetrics& a) { return a.vs == vs.name; }))
        s.announce.push_back({vs.name, false, false, 0, 0});
    return s;
  }

  // One probe session per backend of every virtual server whose health_check mode is not
  // "none". Backends no longer probed are considered healthy again (operator state rules).
  void sync_probes() {
    std::vector<ProbeTarget> targets;
    std::map<uint32_t, bool> healthy;
    for (const BackendView& b : controller_->backends()) healthy[b.id] = b.healthy;
    for (const auto& vs : config_.virtual_servers) {
      const HealthCheck& hc = vs.health_check;
      for (const auto& b : vs.backends) {
        auto id = controller_->backend_id(vs.name + "/" + b.name);
        if (!id) continue;
        if (hc.mode == ProbeMode::kNone) {
          if (!healthy[*id]) controller_->set_health(*id, true, "health checks disabled");
          continue;
        }
        ProbeTarget t;
        t.id = *id;
        t.address = b.address;
        t.port = hc.port;
        t.source = hc.source;
        t.settings.mode =
            hc.mode == ProbeMode::kFull ? ike::ProbeMode::kFull : ike::ProbeMode::kStateless;
        t.settings.interval = ike::Duration(hc.interval_ms);
        t.settings.timeout = ike::Duration(hc.timeout_ms);
        t.settings.jitter = ike::Duration(hc.jitter_ms);
        t.settings.rise = hc.rise;
        t.settings.fall = hc.fall;
        t.settings.port_4500 = hc.port == 4500;
        t.settings.no_proposal_chosen_healthy = hc.no_proposal_chosen_healthy;
        t.initially_healthy = healthy[*id];
        targets.push_back(t);
        probe_modes_[*id] = hc.mode;
      }
    }
    for (const auto& e : prober_->set_targets(targets)) log_error(e);
  }

  ApiHooks hooks() {
    ApiHooks h;
    h.status = [this] { return status(); };
    h.reload = [this] { return reload("admin API"); };
    h.teardown = [this] { return teardown(); };
    h.operator_done = [](const std::string& what) { log_info("operator: " + what); };
    h.node_status = [this] { return node_json(); };
    h.node_action = [this](const std::string& action) { return node_action(action); };
    h.probe = [this](uint32_t id) -> nlohmann::json {
      auto st = prober_ ? prober_->status(id) : std::nullopt;
      if (!st) return nullptr;
      return probe_json(*st, probe_modes_[id]);
    };
    return h;
  }

  nlohmann::json status() {
    nlohmann::json ifs = nlohmann::json::array();
    for (const auto& name : datapath_->attached())
      ifs.push_back(
          {{"name", name}, {"mode", config_.xdp_mode == XdpMode::kGeneric ? "generic" : "native"}});
    return {{"version", IKELB_VERSION},
            {"config", options_.config_path},
            {"pin_dir", config_.bpffs},
            {"adopted", adopted_},
            {"started", rfc3339(started_)},
            {"interfaces", ifs},
            {"affinity",
             {{"capacity", datapath_->affinity_capacity()},
              {"entries", affinity_entries_ ? nlohmann::json(*affinity_entries_) : nullptr},
              {"idle_timeout_s", config_.affinity_idle_timeout_s}}},
            {"last_reload",
             {{"time", rfc3339(last_reload_)}, {"ok", last_reload_ok_}, {"errors", last_errors_}}},
            {"node", node_json()},
            {"sync", sync_json()}};
  }

  // ---- peer sync of affinity entries (sync.h) ----

  // Starts, reconfigures or stops the sync after the config changed. Returns an error for the
  // log ("" if fine); on a reload the previous sync keeps running when the new one cannot start.
  std::string configure_sync() {
    if (!config_.sync) {
      if (sync_) log_info("sync: stopped (no sync section any more)");
      sync_timer_.cancel();
      sync_.reset();
      sync_socket_.reset();
      sync_store_.reset();
      return "";
    }
    const SyncConfig& sc = *config_.sync;
    SyncSettings st;
    auto key = read_sync_key(sc);
    if (auto* e = std::get_if<ConfigError>(&key)) return e->str();
    st.key = std::get<std::vector<uint8_t>>(key);
    st.node_id = sc.node_id;
    for (const auto& p : sc.peers)
      if (auto a = parse_listen_address(p)) st.peers.push_back({a->address, a->port});
    st.interval_ms = sc.interval_ms;
    st.max_records_per_second = sc.max_records_per_second;
    st.queue_records = sc.queue_records;
    st.snapshot_on_join = sc.snapshot_on_join;
    st.snapshot_timeout_ms = sc.snapshot_timeout_ms;
    st.idle_ns = controller_->affinity_idle_ns();
    auto listen = parse_listen_address(sc.listen);
    const SyncEndpoint local{listen->address, listen->port};
    if (!sync_socket_ || sync_listen_ != sc.listen) {
      std::unique_ptr<SyncSocket> socket;
      try {
        socket = std::make_unique<SyncSocket>(
            io_, local, [this](const SyncEndpoint& from, std::span<const uint8_t> d) {
              if (sync_) sync_->receive(from, d);
            });
      } catch (const std::exception& e) {
        return std::string("/sync/listen: ") + e.what();
      }
      sync_socket_ = std::move(socket);
      sync_listen_ = sc.listen;
      sync_.reset();  // its sender was the old socket
    }
    if (sync_) {
      sync_->configure(st);
    } else {
      if (!sync_store_)
        sync_store_ = std::make_unique<DatapathSyncStore>(*datapath_, *controller_, sync_clock_);
      sync_ = std::make_unique<SyncNode>(st, sync_clock_, *sync_socket_, *sync_store_);
      sync_->on_snapshot_done = [this] { asio::post(io_, [this] { announce_round(); }); };
      sync_->start();
      log_info("sync: node " + std::to_string(sc.node_id) + " on " + sc.listen + ", " +
               std::to_string(st.peers.size()) + " peers");
    }
    schedule_sync(std::chrono::milliseconds(0));
    return "";
  }

  void schedule_sync(std::chrono::milliseconds delay) {
    sync_timer_.expires_after(delay);
    sync_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || !sync_) return;
      sync_->begin_round();
      sync_step();
      schedule_sync(std::chrono::milliseconds(config_.sync->interval_ms));
    });
  }

  // One bounded piece of the round at a time, yielding to the loop in between.
  void sync_step() {
    if (!sync_ || tearing_down_) return;
    bool more = false;
    try {
      more = sync_->step();
    } catch (const std::exception& e) {
      log_warning(std::string("sync: ") + e.what());
    }
    if (more) asio::post(io_, [this] { sync_step(); });
  }

  nlohmann::json sync_json() const {
    if (!sync_) return nullptr;
    const SyncStats& st = sync_->stats();
    return {{"node_id", config_.sync->node_id},
            {"listen", config_.sync->listen},
            {"peers", config_.sync->peers},
            {"snapshot", to_string(st.snapshot)},
            {"snapshot_ms", st.snapshot_ms ? nlohmann::json(*st.snapshot_ms) : nullptr},
            {"snapshot_records", st.snapshot_records},
            {"records_sent", st.records_sent},
            {"records_received", st.records_received},
            {"merged", st.merged},
            {"kept_local", st.kept_local},
            {"spi_merged", st.spi_merged},
            {"dropped", st.dropped},
            {"refused", st.refused},
            {"datagrams_sent", st.datagrams_sent},
            {"datagrams_received", st.datagrams_received},
            {"send_errors", st.send_errors},
            {"snapshots_served", st.snapshots_served},
            {"queue", st.queue_depth}};
  }

  // ---- node: announcing through bird, drain, readiness (announcer.h) ----

  // One input per virtual server of the config: the announce section's protocol and minimum, or
  // none and 1 (readiness of a node that does not announce, e.g. behind VRRP).
  std::vector<AnnounceInput> node_inputs(bool announced_only) const {
    std::vector<AnnounceInput> out;
    auto views = controller_->virtual_servers();
    for (const auto& vs : config_.virtual_servers) {
      AnnounceInput in;
      in.vs = vs.name;
      bool listed = false;
      if (config_.announce)
        for (const auto& a : config_.announce->virtual_servers)
          if (a.name == vs.name) {
            in.protocol = a.protocol;
            in.min_healthy_backends = a.min_healthy_backends;
            listed = true;
          }
      if (announced_only && !listed) continue;
      for (const auto& v : views)
        if (v.name == vs.name) {
          in.programmed = v.table_size > 0;
          in.in_table = v.in_table;
        }
      out.push_back(in);
    }
    return out;
  }

  NodeFacts node_facts() const {
    auto attached = datapath_->attached();
    bool all = std::all_of(config_.interfaces.begin(), config_.interfaces.end(), [&](auto& i) {
      return std::find(attached.begin(), attached.end(), i) != attached.end();
    });
    NodeFacts f;
    f.attached = all;
    f.drained = drained_;
    if (sync_ && sync_->holding())
      f.held = "waiting for the affinity snapshot from the sync peers (at most " +
               std::to_string(sync_->settings().snapshot_timeout_ms) + " ms)";
    return f;
  }

  // (Re)creates the bird client when the announce section appears or its socket changes, reads
  // the persisted drain, and starts the periodic round.
  void sync_announce() {
    drained_ = false;
    if (config_.announce) {
      std::error_code ec;
      drained_ = std::filesystem::exists(config_.announce->drain_file, ec);
      if (!bird_ || bird_path_ != config_.announce->bird_socket) {
        announcer_.reset();
        bird_ = std::make_unique<BirdSocket>(config_.announce->bird_socket);
        bird_path_ = config_.announce->bird_socket;
        announcer_ = std::make_unique<Announcer>(*bird_);
        log_info("announcing through bird at " + bird_path_ + (drained_ ? " (node drained)" : ""));
      }
    } else if (announcer_) {
      log_warning("the announce section was removed: bird's protocols are left as they are");
      announcer_.reset();
      bird_.reset();
      bird_path_.clear();
    }
    announce_timer_.cancel();
    if (announcer_) schedule_announce(std::chrono::milliseconds(0));
  }

  void schedule_announce(std::chrono::milliseconds delay) {
    announce_timer_.expires_after(delay);
    announce_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      announce_round();
      schedule_announce(std::chrono::milliseconds(config_.announce->interval_ms));
    });
  }

  void announce_round() {
    if (announcer_ && !tearing_down_) announcer_->reconcile(node_facts(), node_inputs(true));
  }

  nlohmann::json node_json() const {
    nlohmann::json announce = nlohmann::json::array();
    if (announcer_)
      for (const AnnounceStatus& st : announcer_->status())
        announce.push_back({{"virtual_server", st.vs},
                            {"protocol", st.protocol},
                            {"wanted", st.wanted},
                            {"cause", st.cause},
                            {"announced", st.announced ? nlohmann::json(*st.announced) : nullptr},
                            {"bird_state", st.bird_state},
                            {"announces", st.announces},
                            {"withdraws", st.withdraws},
                            {"errors", st.errors},
                            {"last_error", st.last_error}});
    const std::string cause = not_ready_cause(node_facts(), node_inputs(false));
    return {{"drained", drained_},
            {"ready", cause.empty()},
            {"not_ready_cause", cause},
            {"bird_socket", announcer_ ? nlohmann::json(bird_path_) : nullptr},
            {"announce", announce}};
  }

  // `ikelbctl node drain|undrain`: persisted in announce.drain_file (so a restart keeps it),
  // then one round at once.
  std::string node_action(const std::string& action) {
    const bool drain = action == "drain";
    if (!drain && action != "undrain")
      throw ControlError(404, "unknown node action \"" + action + "\" (drain, undrain)");
    std::string note;
    if (config_.announce) {
      const std::filesystem::path file = config_.announce->drain_file;
      std::error_code ec;
      if (drain) {
        std::filesystem::create_directories(file.parent_path(), ec);
        std::ofstream(file) << "drained by ikelbctl node drain at " << rfc3339(clock_.now())
                            << "\n";
        if (!std::filesystem::exists(file, ec))
          note = " (not persisted: cannot write " + file.string() + ")";
      } else if (!std::filesystem::remove(file, ec) && ec) {
        note = " (cannot remove " + file.string() + ": " + ec.message() + ")";
      }
    }
    drained_ = drain;
    log_info(std::string("node ") + (drain ? "drained" : "undrained") + " by the operator" + note);
    announce_round();
    return std::string(drain ? "node drained: VIPs withdrawn, forwarding continues"
                             : "node undrained: VIPs announced where they can be served") +
           note;
  }

  void record_reload(bool ok, std::vector<std::string> errors) {
    last_reload_ = clock_.now();
    (ok ? reloads_ok_ : reloads_rejected_)++;
    if (ok) last_success_ = last_reload_;
    last_reload_ok_ = ok;
    last_errors_ = std::move(errors);
  }

  // Attaches to configured interfaces, detaches from ones the config no longer names.
  void sync_interfaces() {
    bool generic = config_.xdp_mode == XdpMode::kGeneric;
    auto attached = datapath_->attached();
    for (const auto& ifname : config_.interfaces)
      if (std::find(attached.begin(), attached.end(), ifname) == attached.end())
        log_info(datapath_->attach(ifname, generic));
    std::set<std::string> wanted(config_.interfaces.begin(), config_.interfaces.end());
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(config_.bpffs, ec)) {
      std::string f = e.path().filename().string();
      if (f.starts_with("link_") && !wanted.count(f.substr(5))) {
        datapath_->detach(f.substr(5));
        log_info("detached XDP from " + f.substr(5) + ": no longer in the config");
      }
    }
  }

  std::vector<std::string> reload(const std::string& why) {
    notify("RELOADING=1\n" + monotonic_usec_field());
    auto errors = reload_config(why);
    notify("READY=1\nSTATUS=" +
           (errors.empty() ? summary(config_) : "last reload rejected: " + join(errors, "; ")));
    return errors;
  }

  std::vector<std::string> reload_config(const std::string& why) {
    ConfigResult result = parse_config_file(options_.config_path);
    std::vector<std::string> errors;
    for (const auto& e : result.errors) errors.push_back(e.str());
    if (result.config) {
      for (const auto& e : check_interfaces(
               *result.config, [](const std::string& n) { return if_nametoindex(n.c_str()) != 0; }))
        errors.push_back(e.str());
      if (result.config->bpffs != config_.bpffs)
        errors.push_back("/bpffs: the pin directory cannot change while running (restart)");
      if (result.config->admin_socket != config_.admin_socket)
        errors.push_back("/admin/socket: the admin socket cannot change while running (restart)");
      if (result.config->health_listen != config_.health_listen)
        errors.push_back(
            "/health/listen: the health listener cannot change while running (restart)");
      if (result.config->sync)
        if (auto key = read_sync_key(*result.config->sync);
            std::holds_alternative<ConfigError>(key))
          errors.push_back(std::get<ConfigError>(key).str());
    }
    if (errors.empty()) errors = controller_->apply(*result.config);
    if (!errors.empty()) {
      log_error("reload (" + why + ") rejected, nothing changed: " + join(errors, "; "));
      record_reload(false, errors);
      return errors;
    }
    config_ = *result.config;
    if (std::string error = configure_sync(); !error.empty()) log_error("reload: " + error);
    sync_announce();
    LogLevel level;
    if (parse_log_level(config_.log_level, level)) set_log_level(level);
    if (config_.affinity_max_entries != datapath_->affinity_capacity())
      log_warning("affinity.max_entries " + std::to_string(config_.affinity_max_entries) +
                  " takes effect after a teardown; the map keeps " +
                  std::to_string(datapath_->affinity_capacity()));
    sync_interfaces();
    sync_probes();
    record_reload(true, {});
    log_info("reloaded (" + why + "): " + summary(config_));
    return {};
  }

  // Withdraws this node's VIPs in bird while it still forwards what already arrives.
  void withdraw_for_teardown() {
    if (announcer_)
      for (const auto& e : announcer_->withdraw_all(node_inputs(true), "teardown"))
        log_error("teardown: withdraw " + e);
  }

  std::string teardown() {
    tearing_down_ = true;
    withdraw_for_teardown();
    // After the reply is written: detach, unpin, stop.
    asio::post(io_, [this] { teardown_now(); });
    return "tearing down: XDP detached and pins under " + config_.bpffs + " removed";
  }

  void teardown_now() {
    try {
      auto removed = Datapath::teardown(config_.bpffs);
      log_info("teardown: detached and unpinned " + std::to_string(removed.size()) +
               " objects under " + config_.bpffs);
    } catch (const std::exception& e) {
      log_error(std::string("teardown: ") + e.what());
      exit_code_ = 1;
    }
    stop();
  }

  // systemd's notification socket, if ikelbd runs under Type=notify; a failure is only logged.
  static void notify(const std::string& state) {
    if (std::string error = notify_service(state); !error.empty()) log_warning(error);
  }

  void stop() {
    notify("STOPPING=1");
    exposer_.reset();  // no scrape may wait on a loop that is about to stop
    watcher_.reset();
    prober_.reset();
    if (health_) health_->stop();
    signals_.cancel();
    scan_timer_.cancel();
    announce_timer_.cancel();
    sync_timer_.cancel();
    if (server_) server_->stop();
    io_.stop();
  }

  void wait_signal() {
    signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        reload("SIGHUP");
        wait_signal();
        return;
      }
      std::string name = sig == SIGINT ? "SIGINT" : "SIGTERM";
      if (options_.teardown_on_stop) {
        log_info("stopping on " + name + " with --teardown-on-stop: detaching XDP");
        tearing_down_ = true;
        withdraw_for_teardown();
        teardown_now();
        return;
      }
      log_info("stopping on " + name +
               "; XDP stays attached and forwarding (ikelbctl teardown removes it)");
      stop();
    });
  }

  // Walks the affinity map a batch at a time, yielding to the loop between batches, and hands
  // the live pinned-client counts per backend to the controller at the end of each walk.
  void schedule_scan(std::chrono::milliseconds delay) {
    scan_timer_.expires_after(delay);
    scan_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      cursor_ = {};
      counts_.clear();
      entries_ = 0;
      scan_step();
    });
  }

  void scan_step() {
    const uint64_t now = monotonic_ns(), idle = controller_->affinity_idle_ns();
    bool more = false;
    try {
      more = datapath_->scan_affinity(
          cursor_, 4096, [&](const ikelb_affinity_key&, const ikelb_affinity_value& v) {
            entries_++;
            if (affinity_live(v.last_seen_ns, now, idle)) counts_[v.backend_id]++;
          });
    } catch (const std::exception& e) {
      log_warning(std::string("affinity scan: ") + e.what());
      schedule_scan(options_.scan_interval);
      return;
    }
    if (more) {
      asio::post(io_, [this] { scan_step(); });
      return;
    }
    affinity_entries_ = entries_;
    controller_->set_pinned_counts(counts_);
    try {
      spi_owner_entries_ = datapath_->spi_owner_entries();
    } catch (const std::exception& e) {
      log_warning(std::string("SPI owner walk: ") + e.what());
    }
    try {
      if (size_t n = datapath_->set_local_addresses(host_addresses()))
        log_debug("local addresses: " + std::to_string(n) + " changed");
    } catch (const std::exception& e) {
      log_warning(std::string("local addresses: ") + e.what());
    }
    schedule_scan(options_.scan_interval);
  }

  AgentOptions options_;
  Config config_;
  asio::io_context io_;
  asio::signal_set signals_;
  asio::steady_timer scan_timer_;
  asio::steady_timer announce_timer_;
  std::unique_ptr<BirdSocket> bird_;
  std::unique_ptr<Announcer> announcer_;
  std::string bird_path_;
  asio::steady_timer sync_timer_;
  SystemSyncClock sync_clock_;
  std::unique_ptr<DatapathSyncStore> sync_store_;
  std::unique_ptr<SyncSocket> sync_socket_;
  std::unique_ptr<SyncNode> sync_;
  std::string sync_listen_;
  bool drained_ = false;
  bool tearing_down_ = false;
  SystemClock clock_;
  std::unique_ptr<Datapath> datapath_;
  std::unique_ptr<Controller> controller_;
  std::unique_ptr<AdminServer> server_;
  std::unique_ptr<AdminServer> health_;  // /healthz, /readyz
  std::unique_ptr<ConfigWatcher> watcher_;
  std::unique_ptr<Prober> prober_;
  std::shared_ptr<SnapshotCollectable> metrics_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  uint64_t reloads_ok_ = 0, reloads_rejected_ = 0;
  std::chrono::system_clock::time_point last_success_{};
  std::map<uint32_t, ProbeMode> probe_modes_;
  bool adopted_ = false;
  int exit_code_ = 0;
  std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();
  std::chrono::system_clock::time_point last_reload_{};
  bool last_reload_ok_ = false;
  std::vector<std::string> last_errors_;
  Datapath::AffinityCursor cursor_;
  std::map<uint32_t, uint64_t> counts_;
  uint64_t entries_ = 0;
  std::optional<uint64_t> affinity_entries_;
  std::optional<uint64_t> spi_owner_entries_;  // learned SPI owners, from the last walk
};

}  // namespace

int run_agent(const AgentOptions& options) {
  ConfigResult result = parse_config_file(options.config_path);
  if (!result.config) {
    for (const auto& e : result.errors) log_error(e.str());
    return 2;
  }
  Agent agent(options, *result.config);
  return agent.run();
}

}  // namespace ikelb
