#!/bin/sh
# Container entrypoint of the opsbot image.
#
# 1. The config file is written to OPSBOT_CONFIG (default /tmp/opsbot/config.yaml; the
#    root filesystem is read-only, /tmp is the task's writable volume) from either
#    - OPSBOT_CONFIG_PARAMETER + OPSBOT_CONFIG_VERSION (on ECS): the SSM parameter at
#      exactly that version, so a task runs the config its task definition pins, never
#      a later edit; a missing version stops the container before anything starts, or
#    - OPSBOT_CONFIG_YAML: the content itself.
# 2. `opsbot serve` migrates the database itself before it listens, so a new release
#    never serves against an old schema; OPSBOT_SKIP_MIGRATIONS=1 passes --no-migrate.
# 3. The command replaces this shell (exec), so the bot is PID 1's child under the
#    init process and receives SIGTERM directly on a deployment.
set -eu

config_target() {
  OPSBOT_CONFIG="${OPSBOT_CONFIG:-/tmp/opsbot/config.yaml}"
  mkdir -p "$(dirname "$OPSBOT_CONFIG")"
  export OPSBOT_CONFIG
}

if [ -n "${OPSBOT_CONFIG_PARAMETER:-}" ]; then
  if [ -z "${OPSBOT_CONFIG_VERSION:-}" ]; then
    echo "opsbot-entrypoint: OPSBOT_CONFIG_PARAMETER is set without OPSBOT_CONFIG_VERSION (the pinned version)" >&2
    exit 64
  fi
  config_target
  # boto3 is one of the bot's own dependencies; the task role may read this parameter.
  (umask 077 && python - "$OPSBOT_CONFIG" <<'PY'
import json
import os
import sys

import boto3
from botocore.exceptions import BotoCoreError, ClientError

name = os.environ["OPSBOT_CONFIG_PARAMETER"]
version = os.environ["OPSBOT_CONFIG_VERSION"]
event = {"event": "config_fetch", "parameter": name, "version": version}
try:
    # botocore reads AWS_DEFAULT_REGION only; the task definition sets AWS_REGION.
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    ssm = boto3.client("ssm", region_name=region)
    answer = ssm.get_parameter(Name=f"{name}:{version}", WithDecryption=True)
except (BotoCoreError, ClientError) as exc:
    code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
    print(json.dumps({**event, "level": "error", "error": code}), file=sys.stderr)
    sys.exit(1)
with open(sys.argv[1], "w", encoding="utf-8") as out:
    out.write(answer["Parameter"]["Value"] + "\n")
print(json.dumps({**event, "level": "info"}), file=sys.stderr)
PY
  ) || { echo "opsbot-entrypoint: cannot read the pinned config $OPSBOT_CONFIG_PARAMETER:$OPSBOT_CONFIG_VERSION" >&2; exit 1; }
elif [ -n "${OPSBOT_CONFIG_YAML:-}" ]; then
  config_target
  (umask 077 && printf '%s\n' "$OPSBOT_CONFIG_YAML" >"$OPSBOT_CONFIG")
fi
unset OPSBOT_CONFIG_YAML 2>/dev/null || true

if [ "${1:-}" = "opsbot" ] && [ "${2:-}" = "serve" ] && [ "${OPSBOT_SKIP_MIGRATIONS:-0}" = "1" ]; then
  shift 2
  set -- opsbot serve --no-migrate "$@"
fi

exec "$@"
