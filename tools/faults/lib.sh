# tools/faults/lib.sh — what every fault scenario shares (sourced, not run).
#
# A scenario runs everything it breaks as its own processes: a private PostgreSQL cluster and
# Redis server (tools/stack with VIGIL_STACK_DIR under .data/faults/, free loopback ports) and
# its own `vigil serve` processes. The shared stack in .data/ is never touched. Everything is
# stopped on exit, whatever happens; the folder (logs included) is kept when the scenario
# fails or FAULTS_KEEP=1.
#
# Environment: FAULTS_SHORT=1 (or --short) runs the short version; VIGIL_BIN uses that binary
# instead of building .build/debug/vigil.

set -euo pipefail

FAULTS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
FAULTS_PY="${FAULTS_ROOT}/tools/faults/faults.py"
FAULTS_SHORT=${FAULTS_SHORT:-0}
for arg in "$@"; do
  [[ ${arg} == --short ]] && FAULTS_SHORT=1
done
export FAULTS_SHORT

SCENARIO=""
FAULTS_DIR=""
VIGIL=""
SERVE_PIDS=()
HELD_PIDS=()
FAULTS_STATUS=FAIL

say() { printf '  [%s %s] %s\n' "${SCENARIO}" "$(date -u +%H:%M:%S)" "$*" >&2; }

# Prints the scenario's one line and sets the exit status.
result() { # PASS|FAIL "counts…"
  FAULTS_STATUS=$1
  printf '%-22s %s %s\n' "${SCENARIO}" "$2" "$1"
}

faults_begin() { # name
  SCENARIO=$1
  mkdir -p "${FAULTS_ROOT}/.data/faults"
  FAULTS_DIR=$(mktemp -d "${FAULTS_ROOT}/.data/faults/${SCENARIO}.XXXX")
  chmod 755 "${FAULTS_DIR}"
  trap faults_end EXIT
  trap 'exit 130' INT TERM
  build_vigil
  stack_start
  export VIGIL_SCHEMA_DIR="${FAULTS_ROOT}/schemas"
  "${VIGIL}" migrate >"${FAULTS_DIR}/migrate.log" 2>&1 || { say "migrate failed"; cat "${FAULTS_DIR}/migrate.log" >&2; exit 1; }
}

faults_end() {
  local rc=$? pid
  for pid in "${HELD_PIDS[@]}" "${SERVE_PIDS[@]}"; do
    kill -9 "${pid}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  VIGIL_STACK_DIR="${FAULTS_DIR}" "${FAULTS_ROOT}/tools/stack" stop >/dev/null 2>&1 || true
  if [[ ${FAULTS_STATUS} == PASS && ${rc} -eq 0 && ${FAULTS_KEEP:-0} != 1 ]]; then
    rm -rf "${FAULTS_DIR}"
  else
    say "logs kept in ${FAULTS_DIR}"
  fi
  [[ ${FAULTS_STATUS} == PASS ]] || rc=1
  exit "${rc}"
}

build_vigil() {
  if [[ -n ${VIGIL_BIN:-} ]]; then
    VIGIL=${VIGIL_BIN}
    return
  fi
  (cd "${FAULTS_ROOT}" && swift build --product vigil >"${FAULTS_DIR}/build.log" 2>&1) || {
    tail -n 30 "${FAULTS_DIR}/build.log" >&2
    exit 1
  }
  VIGIL="${FAULTS_ROOT}/.build/debug/vigil"
}

# ---------------------------------------------------------------- PostgreSQL and Redis

stack_start() { # (re)start whatever of the private stack is not running, on the same ports
  VIGIL_STACK_DIR="${FAULTS_DIR}" "${FAULTS_ROOT}/tools/stack" start >>"${FAULTS_DIR}/stack.log" 2>&1 || {
    tail -n 30 "${FAULTS_DIR}/stack.log" >&2
    exit 1
  }
  # shellcheck source=/dev/null
  source "${FAULTS_DIR}/stack.env"
  export VIGIL_PG_HOST VIGIL_PG_PORT VIGIL_PG_USER VIGIL_PG_PASSWORD VIGIL_PG_DATABASE
  export VIGIL_REDIS_HOST VIGIL_REDIS_PORT
}

pg_data_dir() { readlink -f "${FAULTS_DIR}/pg"; }
postmaster_pid() { sed -n 1p "$(pg_data_dir)/postmaster.pid" 2>/dev/null || true; }

# A crash: the postmaster and every backend get SIGKILL at once (no shutdown checkpoint, no
# flush); the next start runs crash recovery from the WAL.
pg_kill9() {
  local pid children
  pid=$(postmaster_pid)
  [[ -n ${pid} ]] || { say "no postmaster to kill"; return 1; }
  children=$(pgrep -P "${pid}" || true)
  # shellcheck disable=SC2086
  kill -9 "${pid}" ${children} 2>/dev/null || true
  local i
  for i in $(seq 1 50); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.1
  done
}

pg_start_again() { stack_start; }

# A clean stop (`pg_ctl stop -m fast`), as the cluster's owner.
pg_stop_clean() {
  local data owner bin
  data=$(pg_data_dir)
  owner=$(stat -c %U "${data}")
  bin=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
  if [[ ${EUID} -eq 0 && ${owner} != root ]]; then
    (cd / && runuser -u "${owner}" -- "${bin}/pg_ctl" stop -D "${data}" -m fast -w -t 30 >/dev/null)
  else
    "${bin}/pg_ctl" stop -D "${data}" -m fast -w -t 30 >/dev/null
  fi
}

redis_kill9() {
  local pid
  pid=$(cat "${FAULTS_DIR}/redis/redis.pid" 2>/dev/null || true)
  [[ -n ${pid} ]] && kill -9 "${pid}" 2>/dev/null || true
  sleep 0.3
}

psql_q() { # sql -> unaligned tuples
  psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${VIGIL_PG_PORT}" -U "${VIGIL_PG_USER}" \
    -d "${VIGIL_PG_DATABASE}" -c "$1"
}

# ---------------------------------------------------------------- vigil serve

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Batches close within seconds so that a short run sees them close.
export VIGIL_BATCH_WINDOW_SECONDS=${VIGIL_BATCH_WINDOW_SECONDS:-6}
export VIGIL_BATCH_IDLE_TIMEOUT_SECONDS=${VIGIL_BATCH_IDLE_TIMEOUT_SECONDS:-2}
export VIGIL_LOG_LEVEL=${VIGIL_LOG_LEVEL:-notice}

SERVE_PID=""
serve_start() { # port [log name]; sets SERVE_PID once /health answers
  local port=$1 name=${2:-serve-$1} i
  "${VIGIL}" serve --host 127.0.0.1 --port "${port}" >>"${FAULTS_DIR}/${name}.log" 2>&1 &
  SERVE_PID=$!
  SERVE_PIDS+=("${SERVE_PID}")
  for i in $(seq 1 300); do
    curl -fsS -m 1 "http://127.0.0.1:${port}/health" >/dev/null 2>&1 && return 0
    kill -0 "${SERVE_PID}" 2>/dev/null || { say "vigil serve exited"; tail -n 20 "${FAULTS_DIR}/${name}.log" >&2; return 1; }
    sleep 0.1
  done
  say "vigil serve did not answer /health within 30 s"
  return 1
}

serve_kill9() { # pid
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Seconds (with decimals) SIGTERM takes to stop a process; 99 when it has to be killed.
serve_term() { # pid -> seconds
  local pid=$1 start end
  start=$(date +%s.%N)
  kill -TERM "${pid}" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "${pid}" 2>/dev/null; then
    kill -9 "${pid}" 2>/dev/null || true
    wait "${pid}" 2>/dev/null || true
    echo 99
    return
  fi
  wait "${pid}" 2>/dev/null || true
  end=$(date +%s.%N)
  python3 -c "print(round(${end} - ${start}, 1))"
}

faults_py() { python3 "${FAULTS_PY}" "$@"; }

# Faults fall at random moments: fault k of n in a run of `seconds` happens at a random
# offset in the first part of its own slot, so that each has load before and after it.
T0=0
mark_start() { T0=$(date +%s.%N); }
sleep_until_fault() { # k n seconds
  local offset
  offset=$(python3 -c "import random; slot = $3 / $2; print(round(($1 - 1) * slot + random.uniform(2, max(2.5, slot * 0.45)), 1))")
  python3 -c "import time; time.sleep(max(0, ${T0} + ${offset} - time.time()))"
}

# Random number in [lo, hi] (seconds, one decimal).
rand_between() { python3 -c "import random; print(round(random.uniform($1, $2), 1))"; }

# A /ws/log client for the run (faults.py wsfollow), started before the load: it reconnects
# from its last checkpoint whenever its socket drops. ws_follow_start returns once it is
# subscribed; ws_follow_notes (once every detection is in: after the retries) tells it to stop
# when quiet, waits for it and prints its figures as `--note` lines (a failing one ends in "!").
ws_follow_start() { # url
  rm -f "${FAULTS_DIR}/wsfollow.stop"
  faults_py wsfollow --url "$1" --stop-file "${FAULTS_DIR}/wsfollow.stop" \
    >"${FAULTS_DIR}/wsfollow.json" 2>"${FAULTS_DIR}/wsfollow.log" &
  WS_FOLLOW_PID=$!
  for _ in $(seq 1 100); do
    grep -q '"subscribed"' "${FAULTS_DIR}/wsfollow.log" 2>/dev/null && return 0
    sleep 0.1
  done
  say "the /ws/log follower did not subscribe within 10 s"
}

ws_follow_notes() {
  touch "${FAULTS_DIR}/wsfollow.stop"
  # Usually called in $(…), where `wait` can't reach the follower: poll for it to end.
  for _ in $(seq 1 1200); do
    kill -0 "${WS_FOLLOW_PID}" 2>/dev/null || break
    sleep 0.1
  done
  say "wsfollow: $(cat "${FAULTS_DIR}/wsfollow.json")"
  python3 - "${FAULTS_DIR}/wsfollow.json" <<'PY'
import json, sys
try:
    w = json.load(open(sys.argv[1]))
except ValueError:
    print("ws_follow=none!")
    sys.exit()
bang = lambda flag: "" if flag else "!"
print(f"ws_received={w['received']}{bang(w['received'] > 0)}")
print(f"ws_missed={w['missed']}{bang(w['missed'] == 0)}")
print(f"ws_twice={w['twice']}{bang(w['twice'] == 0)}")
print(f"ws_out_of_order={w['out_of_order']}{bang(w['out_of_order'] == 0)}")
print(f"ws_reconnects={w['reconnects']}")
PY
}

# A webhook receiver for the run (tools/webhook-receiver, signatures checked): with it, every
# alert of the scenarios' rule (faults.py cameras makes it with the webhook channel) is POSTed
# to it. webhook_start goes before the first serve_start (it exports VIGIL_WEBHOOK_URLS and
# _SECRET); webhook_notes, after the load, waits until the outbox is empty (every delivery
# done or parked), stops the receiver and prints `--note` lines: every alert in the log
# delivered (AlertDelivered) and received, none parked, every signature valid; repeats (a
# delivery sent again after a crash: at least once) are reported, not failed.
webhook_start() {
  local port
  port=$(free_port)
  export VIGIL_WEBHOOK_SECRET="faults-webhooks-$$-$(date +%s)"
  export VIGIL_WEBHOOK_URLS="http://127.0.0.1:${port}/hook"
  "${FAULTS_ROOT}/tools/webhook-receiver" --port "${port}" >"${FAULTS_DIR}/webhooks.jsonl" \
    2>"${FAULTS_DIR}/webhooks.log" &
  WEBHOOK_PID=$!
  for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', ${port}), 0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  say "the webhook receiver did not listen within 10 s"
}

webhook_notes() { # url
  faults_py quiet --url "$1" >/dev/null 2>&1 || true
  for _ in $(seq 1 240); do
    [[ $(psql_q "SELECT count(*) FROM alert_webhooks WHERE parked_at IS NULL") == 0 ]] && break
    sleep 0.5
  done
  kill -TERM "${WEBHOOK_PID}" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "${WEBHOOK_PID}" 2>/dev/null || break
    sleep 0.1
  done
  local alerts delivered parked
  alerts=$(psql_q "SELECT string_agg(data->>'id', ',') FROM events WHERE type = 'AlertTriggered'")
  delivered=$(psql_q "SELECT count(DISTINCT data->>'id') FROM events WHERE type = 'AlertDelivered'")
  parked=$(psql_q "SELECT count(*) FROM alert_webhooks WHERE parked_at IS NOT NULL")
  say "webhooks: $(tail -1 "${FAULTS_DIR}/webhooks.jsonl")"
  python3 - "${FAULTS_DIR}/webhooks.jsonl" "${alerts}" "${delivered}" "${parked}" <<'PY'
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
requests = [line for line in lines if "summary" not in line]
alerts = set(filter(None, sys.argv[2].split(",")))
delivered, parked = int(sys.argv[3]), int(sys.argv[4])
received = {r["alert_id"] for r in requests if r["answer"] == 200}
bad = sum(1 for r in requests if not r["verified"])
repeats = len([r for r in requests if r["answer"] == 200]) - len(received)
bang = lambda flag: "" if flag else "!"
print(f"webhook_alerts={len(alerts)}{bang(len(alerts) > 0)}")
print(f"webhook_delivered={delivered}{bang(delivered == len(alerts))}")
print(f"webhook_received={len(received & alerts)}{bang(received >= alerts)}")
print(f"webhook_parked={parked}{bang(parked == 0)}")
print(f"webhook_bad_signature={bad}{bang(bad == 0)}")
print(f"webhook_repeats={repeats}")
PY
}
