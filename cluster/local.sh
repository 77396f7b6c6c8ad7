#!/usr/bin/env bash
# A local Ray cluster on loopback, with the dashboard:  cluster/local.sh up|down|status
#
# Binds only 127.0.0.1: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 keeps Ray from binding the public interface,
# and the dashboard listens on 127.0.0.1. Token auth is decided explicitly: RAY_AUTH_MODE=disabled by
# default (nothing listens beyond loopback); set RAY_AUTH_MODE=token to require the token in
# ~/.ray/auth_token (or RAY_AUTH_TOKEN) from every client, `ray job submit` included.
# The project's .venv is activated first, so that job entrypoints run with its Python.
# Settings: RAY_PORT (6379), RAY_DASHBOARD_PORT (8265), RAY_NUM_CPUS, RAY_NUM_GPUS, RAY_TMPDIR (/tmp/ray),
# RAY_START_ARGS (more `ray start` flags, e.g. --dashboard-agent-listen-port=… to move Ray's fixed ports).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${VIRTUAL_ENV:-}" && -f "$ROOT/.venv/bin/activate" ]]; then
  # shellcheck disable=SC1091
  source "$ROOT/.venv/bin/activate"
fi
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
export RAY_USAGE_STATS_ENABLED=0
PORT="${RAY_PORT:-6379}"
DASHBOARD_PORT="${RAY_DASHBOARD_PORT:-8265}"
TMPDIR_RAY="${RAY_TMPDIR:-/tmp/ray}"

case "${1:-status}" in
  up)
    args=(--head --node-ip-address=127.0.0.1 --port="$PORT" --dashboard-host=127.0.0.1
          --dashboard-port="$DASHBOARD_PORT" --include-dashboard=true --disable-usage-stats
          --temp-dir="$TMPDIR_RAY")
    [[ -n "${RAY_NUM_CPUS:-}" ]] && args+=(--num-cpus="$RAY_NUM_CPUS")
    [[ -n "${RAY_NUM_GPUS:-}" ]] && args+=(--num-gpus="$RAY_NUM_GPUS")
    # shellcheck disable=SC2206
    [[ -n "${RAY_START_ARGS:-}" ]] && args+=(${RAY_START_ARGS})
    ray start "${args[@]}"
    echo "dashboard and job API: http://127.0.0.1:$DASHBOARD_PORT"
    echo "export RAY_ADDRESS=http://127.0.0.1:$DASHBOARD_PORT   # then: ray job submit --working-dir . -- python jobs/meta_train.py --smoke"
    ;;
  down)
    ray stop
    ;;
  status)
    ray status --address "127.0.0.1:$PORT"
    ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
