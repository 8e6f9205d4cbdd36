# Sourced by the bench scripts: a podman of its own under "$state/podman", set up to run
# on this kind of host, for comparisons made in the same run.
# runc (crun refuses a hybrid cgroup layout), cgroupfs, and rlimits runc may set without
# CAP_SYS_RESOURCE (podman's defaults ask for more than this host's hard limits).

# Installs Debian's podman with netavark, catatonit and runc when missing.
podman_install() {
    command -v podman >/dev/null && return 0
    apt-get install -y -q --no-install-recommends podman netavark aardvark-dns catatonit runc conmon >/dev/null
}

# podman with this run's storage and configuration.
podman_() { CONTAINERS_CONF="$state/podman/containers.conf" podman --root "$state/podman/storage" --runroot "$state/podman/run" "$@"; }

# Writes the configuration and loads the image archive $1.
podman_setup() {
    mkdir -p "$state/podman"
    local nofile
    nofile=$(ulimit -Hn)
    cat >"$state/podman/containers.conf" <<EOF2
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
[network]
network_backend = "netavark"
EOF2
    podman_ load -i "$1" >/dev/null 2>&1
}

# Removes every pod and all storage of this run's podman.
podman_cleanup() {
    [ -d "$state/podman" ] || return 0
    podman_ pod rm -fa -t 0 >/dev/null 2>&1 || true
    podman_ system reset -f >/dev/null 2>&1 || true
    # podman's bridges, when nothing is attached to them (a podman of the user's own
    # would still have its containers there).
    local br
    for br in podman0 cni-podman0; do
        [ -d "/sys/class/net/$br/brif" ] && [ -z "$(ls "/sys/class/net/$br/brif")" ] &&
            ip link del "$br" 2>/dev/null || true
    done
    # podman's cgroups, deepest first (rmdir leaves any that still has a process).
    find /sys/fs/cgroup -depth -type d -path '*/libpod_parent*' -exec rmdir {} \; 2>/dev/null || true
}
