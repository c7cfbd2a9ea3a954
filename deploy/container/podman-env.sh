# Sourced by build.sh and the container test: a podman whose configuration, storage and state
# all live under one directory, so that nothing touches the host's podman set-up.
#   podman_env DIR    then call podman_ (the isolated podman) instead of podman
# Facts from this kind of machine (docs/kubernetes.md): runc, not crun (cgroups v1/hybrid);
# cgroupfs rather than systemd (PID 1 is not systemd); file events; vfs storage, so that no
# overlay mount outlives a removed directory.
podman_env() {
  PODMAN_DIR=$1
  mkdir -p "$PODMAN_DIR/storage" "$PODMAN_DIR/run" "$PODMAN_DIR/tmp"
  cat > "$PODMAN_DIR/containers.conf" <<CONF
[containers]
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$PODMAN_DIR/events.log"
runtime = "runc"
tmp_dir = "$PODMAN_DIR/tmp"
static_dir = "$PODMAN_DIR/storage/libpod"
volume_path = "$PODMAN_DIR/storage/volumes"
[network]
network_config_dir = "$PODMAN_DIR/networks"
CONF
  cat > "$PODMAN_DIR/storage.conf" <<CONF
[storage]
driver = "vfs"
graphroot = "$PODMAN_DIR/storage"
runroot = "$PODMAN_DIR/run"
CONF
  printf 'unqualified-search-registries = []\n' > "$PODMAN_DIR/registries.conf"
  export CONTAINERS_CONF=$PODMAN_DIR/containers.conf
  export CONTAINERS_STORAGE_CONF=$PODMAN_DIR/storage.conf
  export CONTAINERS_REGISTRIES_CONF=$PODMAN_DIR/registries.conf
}

podman_() {
  podman --root "$PODMAN_DIR/storage" --runroot "$PODMAN_DIR/run" --storage-driver vfs \
    --cgroup-manager cgroupfs --events-backend file --runtime runc --tmpdir "$PODMAN_DIR/tmp" "$@"
}
