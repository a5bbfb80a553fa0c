#!/bin/sh
# Container entrypoint of the opsbot image.
#
# 1. OPSBOT_CONFIG_YAML (the config file's content, injected by ECS from an SSM
#    parameter) is written to OPSBOT_CONFIG (default /tmp/opsbot/config.yaml): the
#    root filesystem is read-only, /tmp is the task's writable volume.
# 2. Before `opsbot serve`, the database is migrated (`opsbot db upgrade`), so a new
#    release never serves against an old schema. OPSBOT_SKIP_MIGRATIONS=1 skips it.
# 3. The command replaces this shell (exec), so the bot is PID 1's child under the
#    init process and receives SIGTERM directly on a deployment.
set -eu

if [ -n "${OPSBOT_CONFIG_YAML:-}" ]; then
  OPSBOT_CONFIG="${OPSBOT_CONFIG:-/tmp/opsbot/config.yaml}"
  mkdir -p "$(dirname "$OPSBOT_CONFIG")"
  (umask 077 && printf '%s\n' "$OPSBOT_CONFIG_YAML" >"$OPSBOT_CONFIG")
  export OPSBOT_CONFIG
  unset OPSBOT_CONFIG_YAML
fi

if [ "${1:-}" = "opsbot" ] && [ "${2:-}" = "serve" ] && [ "${OPSBOT_SKIP_MIGRATIONS:-0}" != "1" ]; then
  opsbot db upgrade
fi

exec "$@"
