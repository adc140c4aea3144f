#!/usr/bin/env bash
# OpenAPI-driven fuzzing of /api/v1 with schemathesis (from PyPI): starts the real server on a
# free port with a throwaway data dir, generates requests from /api/v1/openapi.json for every
# operation (examples, coverage, fuzzing and stateful phases) and fails on any 5xx answer.
#
#   scripts/fuzz-api.sh            # 240 s budget
#   FUZZ_SECONDS=60 scripts/fuzz-api.sh
#
# Needs python3.11 with venv; schemathesis is installed into target/fuzz-api-venv once.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-240}"
python="$(command -v python3.11 || echo /usr/bin/python3.11)"
venv="target/fuzz-api-venv"
if [ ! -x "$venv/bin/st" ]; then
  echo "installing schemathesis into $venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet schemathesis
fi
cargo build --quiet --bin holactl
work="$(mktemp -d)"
port="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
env -i PATH=/usr/bin:/bin HOME="$work" target/debug/holactl lambda serve \
  --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
  [ -s "$work/data/admin.token" ] && curl -fsS "http://127.0.0.1:$port/api/v1/health" >/dev/null 2>&1 && break
  sleep 0.1
done
token="$(cat "$work/data/admin.token")"
# `not_a_server_error`: no answer may be a 5xx. The zip upload (`POST /api/v1/code`) cannot be
# generated from a schema and is exercised by the end-to-end tests instead.
"$venv/bin/st" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  -H "Authorization: Bearer $token" \
  --checks not_a_server_error \
  --exclude-operation-id uploadCode \
  --max-time "$seconds" -w 2
