# Installs, with apt, what ballast's tests, demo and benchmark need and this machine lacks.
# Sourced by the other scripts; `ensure_packages [extra-debian-package ...]`.
ensure_packages() {
  local need=()
  [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
  command -v go >/dev/null 2>&1 || need+=(golang-go)
  command -v gcc >/dev/null 2>&1 || need+=(gcc)
  command -v strip >/dev/null 2>&1 || need+=(binutils)
  # The real strip for the arm64 sample, the oracle of the strip predictions.
  command -v aarch64-linux-gnu-strip >/dev/null 2>&1 || need+=(binutils-aarch64-linux-gnu)
  command -v git >/dev/null 2>&1 || need+=(git)
  command -v musl-gcc >/dev/null 2>&1 || need+=(musl-tools)
  local extra
  for extra in "$@"; do
    dpkg -s "$extra" >/dev/null 2>&1 || need+=("$extra")
  done
  if [ ${#need[@]} -gt 0 ]; then
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    echo "installing: ${need[*]}" >&2
    $sudo apt-get update -qq
    # The package would start a registry on :5000 where init systems run; we start our own.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
  fi
}

# What the test suite needs beyond that: the local engines `docker-daemon:` and
# `podman:` read (started by the tests), skopeo (a real oci-archive writer), openssl
# (the self-signed registry certificate, made as the Docker docs make it), GNU time
# (peak RSS of a child), util-linux's setpriv (a non-root client) and chromium (the
# headless browser that renders the report's Mermaid charts); golang.org/x/text is the
# third-party module of the Go sample with dependencies (testdata/hello-go-deps).
TEST_PACKAGES=(docker.io podman skopeo umoci openssl time util-linux chromium golang-golang-x-text-dev)

# Installs mermaid 11 from npm into target/mermaid, where the report rendering test
# finds target/mermaid/node_modules/mermaid/dist/mermaid.min.js: the same major
# version GitHub renders Mermaid blocks with.
ensure_mermaid() {
  local dir=target/mermaid
  [ -f "$dir/node_modules/mermaid/dist/mermaid.min.js" ] && return 0
  command -v npm >/dev/null 2>&1 || ensure_packages npm
  mkdir -p "$dir"
  echo "installing: mermaid@11 (npm) into $dir" >&2
  npm install --silent --no-audit --no-fund --prefix "$dir" mermaid@11 >&2
}

# Starts dockerd on a socket in DIR (vfs storage, no networking); sets ENGINE_HOST
# and ENGINE_PID. Root only.
start_dockerd() {
  local dir=$1
  ENGINE_HOST="unix://$dir/docker.sock"
  dockerd --data-root="$dir/data" --exec-root="$dir/exec" --pidfile="$dir/dockerd.pid" \
    --host="$ENGINE_HOST" --iptables=false --ip6tables=false --bridge=none \
    --storage-driver=vfs >"$dir/dockerd.log" 2>&1 &
  ENGINE_PID=$!
  local tries=0
  until curl -fsS --unix-socket "$dir/docker.sock" http://engine/_ping >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ $tries -gt 600 ]; then
      echo "dockerd did not start: $(tail -5 "$dir/dockerd.log")" >&2
      return 1
    fi
    sleep 0.1
  done
}

# Starts docker-registry on a free loopback port; sets REGISTRY_HOST and REGISTRY_PID.
start_registry() {
  local dir=$1
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  REGISTRY_HOST="127.0.0.1:$port"
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: $REGISTRY_HOST
YAML
  /usr/bin/docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
  REGISTRY_PID=$!
  local tries=0
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    tries=$((tries + 1))
    if [ $tries -gt 200 ]; then
      echo "docker-registry did not start: $(cat "$dir/registry.log")" >&2
      return 1
    fi
    sleep 0.05
  done
}
