#!/usr/bin/env bash
# Builds the compose lab's images without any registry, from programs on
# this host (a Debian/Ubuntu-like Linux), for machines where Docker Hub
# cannot be reached and the Dockerfile's base images therefore cannot be
# pulled:
#   wslab:latest                 server, loadgen, coordinator (built here with cargo)
#   wslab-prometheus:local       Debian's /usr/bin/prometheus     (apt: prometheus)
#   wslab-node-exporter:local    Debian's node exporter           (apt: prometheus-node-exporter)
# Each image is a root filesystem holding the binaries and exactly the
# shared libraries `ldd` names for them, plus /etc/passwd and /etc/group,
# put together in a temporary directory and loaded with `docker import`.
# docker/compose.local-images.yml points the lab at them.
#
#   docker/build-local-images.sh            # all three
#   SKIP_CARGO=1 docker/build-local-images.sh   # use target/release as it is
#
# Environment: DOCKER (the docker client, default `docker`), SKIP_CARGO.
set -euo pipefail
cd "$(dirname "$0")/.."

docker_cli=${DOCKER:-docker}
work=$(mktemp -d /tmp/wslab-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Copies a program and every shared library it loads into the tree $1.
add_program() {
  local root=$1 src=$2 dest=$3 lib
  install -D -m 0755 "$src" "$root$dest"
  # ldd lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
  # "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
  for lib in $(ldd "$src" | grep -o '/[^ ]*'); do
    [ -e "$root$lib" ] && continue
    # cp -L: the file itself, under the name the program asks for.
    install -d "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# The files every image needs: users, name resolution, a /tmp.
base_tree() {
  local root=$1
  install -d -m 0755 "$root/etc" "$root/bin" "$root/usr/local/bin"
  install -d -m 1777 "$root/tmp"
  cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/usr/sbin/nologin
wslab:x:10001:10001:wslab:/lab:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
  cat >"$root/etc/group" <<'GROUP'
root:x:0:
wslab:x:10001:
nogroup:x:65534:
GROUP
  # Docker supplies /etc/hosts and /etc/resolv.conf; glibc (2.34 and
  # later) has the files and dns lookups built in.
  echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
}

# Loads the tree $1 as image $2. Everything in it is owned by root except
# the directories given as UID:GID:/PATH in $3 (space-separated), so that
# the script needs no root itself, only access to docker. Further
# arguments are `docker import --change` instructions.
import_tree() {
  local root=$1 tag=$2 owned=$3 spec path change
  shift 3
  local excludes=() args=()
  for spec in $owned; do
    path=${spec#*:*:}
    excludes+=(--exclude="./${path#/}")
  done
  tar --numeric-owner --owner=0 --group=0 -C "$root" "${excludes[@]}" -cf "$work/image.tar" .
  for spec in $owned; do
    path=${spec#*:*:}
    tar --numeric-owner --owner="${spec%%:*}" --group="$(echo "$spec" | cut -d: -f2)" \
      -C "$root" -rf "$work/image.tar" "./${path#/}"
  done
  for change in "$@"; do args+=(--change "$change"); done
  "$docker_cli" import "${args[@]}" "$work/image.tar" "$tag" >/dev/null
  rm -f "$work/image.tar"
  echo "built $tag ($(du -sh "$root" | cut -f1) unpacked)"
}

# --- wslab:latest ------------------------------------------------------------
if [ -z "${SKIP_CARGO:-}" ]; then
  cargo build --release --locked --bin server --bin loadgen --bin coordinator
fi
root="$work/wslab"
base_tree "$root"
for b in server loadgen coordinator; do
  add_program "$root" "target/release/$b" "/usr/local/bin/$b"
  # As the Dockerfile does: no debug line tables in the image.
  objcopy --strip-debug "$root/usr/local/bin/$b"
done
install -d "$root/lab"
cp -r scenarios "$root/lab/scenarios"
install -d "$root/lab/results"
import_tree "$root" wslab:latest "10001:10001:/lab/results" \
  'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
  'WORKDIR /lab' \
  'USER 10001:10001' \
  'EXPOSE 8080 9090 7070 9091 9095' \
  'CMD ["server"]'

# --- wslab-prometheus:local --------------------------------------------------
prom=$(command -v prometheus || true)
if [ -z "$prom" ]; then
  echo "build-local-images: prometheus is not installed (apt-get install prometheus)" >&2
  exit 1
fi
root="$work/prometheus"
base_tree "$root"
add_program "$root" "$prom" /bin/prometheus
install -d "$root/prometheus" "$root/etc/prometheus"
import_tree "$root" wslab-prometheus:local "65534:65534:/prometheus" \
  'USER 65534:65534' \
  'WORKDIR /prometheus' \
  'EXPOSE 9090' \
  'ENTRYPOINT ["/bin/prometheus"]' \
  'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]'

# --- wslab-node-exporter:local -----------------------------------------------
node=$(command -v prometheus-node-exporter || true)
if [ -z "$node" ]; then
  echo "build-local-images: prometheus-node-exporter is not installed (apt-get install prometheus-node-exporter)" >&2
  exit 1
fi
# Debian's build turns the systemd collector on and points the textfile
# collector at a Debian directory: both only log errors in a container
# (no D-Bus, no such directory), and the upstream image uses neither.
root="$work/node-exporter"
base_tree "$root"
add_program "$root" "$node" /bin/node_exporter
import_tree "$root" wslab-node-exporter:local "" \
  'USER 65534:65534' \
  'EXPOSE 9100' \
  'ENTRYPOINT ["/bin/node_exporter", "--no-collector.systemd", "--no-collector.textfile"]'
