#!/usr/bin/env bash
# Installs the external programs rebound's tests and benchmarks use, when
# they are not on the machine yet. Sourced by scripts/test.sh and .ci/run.

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL server binaries (initdb, pg_ctl, postgres, pgbench). The tests
# start their own throwaway cluster; nothing here starts a server.
ensure_postgres() {
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/pg_ctl" ]; then
    echo "installing postgresql" >&2
    apt_install postgresql postgresql-contrib
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
  export PATH="$bindir:$PATH"
}

# redis-server: the init.wait_redis tests start their own server on a free
# loopback port; nothing here starts one.
ensure_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server" >&2
    apt_install redis-server
  fi
}

# MariaDB server (mariadbd, mariadb-install-db): the init.wait_mysql tests
# start their own throwaway server on a free loopback port; nothing here
# starts one.
ensure_mariadb() {
  if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    echo "installing mariadb-server" >&2
    apt_install mariadb-server
  fi
}

# s3s-fs: an S3-compatible server on a local directory, built from crates.io.
# Pinned: 0.17 needs a newer rustc than the machine has.
ensure_s3s_fs() {
  if ! command -v s3s-fs >/dev/null 2>&1; then
    echo "installing s3s-fs (cargo install, takes a few minutes)" >&2
    cargo install --quiet --locked s3s-fs@0.14.1 --features binary
  fi
}

# cargo-hack: .ci/run checks that every feature of every crate builds on its
# own (`cargo hack check --each-feature`). From crates.io, with its own lock.
ensure_cargo_hack() {
  if ! cargo hack --version >/dev/null 2>&1; then
    echo "installing cargo-hack (cargo install)" >&2
    cargo install --quiet --locked cargo-hack
  fi
}

# The musl target of the installed toolchain: the entrypoint test builds the
# static, entrypoint-only binary and runs it in an empty root.
ensure_musl_target() {
  if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    echo "installing the x86_64-unknown-linux-musl target (rustup)" >&2
    rustup target add x86_64-unknown-linux-musl
  fi
}

# systemd's tools (systemd-socket-activate, systemd-analyze): the agent's
# socket-activation tests start it through systemd-socket-activate, and the
# example units are checked with systemd-analyze verify. Nothing is started
# as a service.
ensure_systemd_tools() {
  if ! command -v systemd-socket-activate >/dev/null 2>&1 ||
    ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "installing systemd (systemd-socket-activate, systemd-analyze)" >&2
    apt_install systemd
  fi
}
