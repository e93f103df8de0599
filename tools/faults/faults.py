#!/usr/bin/env python3
"""tools/faults/faults.py — the fault scenarios' client side (Python 3 standard library only).

Subcommands (each prints one JSON object or line on stdout, details on stderr):
  cameras   register the test cameras
  ingest    POST detections at a fixed rate, one Idempotency-Key each, and record every answer
  retry     send every unanswered request again with its own key until it is answered
  answers   what the ingest client was answered (5xx, formats, slowest 503)
  verify    compare what was acknowledged with the log and the detections read model
  batches   security events opened or closed twice, detections in two batches, analyses
  analyzed  wait until every security event has its analysis
  quiet     wait until every projection has caught up and the log's head stops moving
  rebuild   checksum every read model, rebuild it, checksum the new generation, compare
  judge     quiet + verify + batches + rebuild → the scenario's PASS/FAIL line
  probe     poll /ready and some routes while a dependency is down
  follow    a client tail of /api/log: nothing missed, nothing read twice
  wsfollow  a /ws/log client that reconnects from its last checkpoint: nothing missed, nothing
            twice, in log order
  horizon   while a foreign transaction is open: /ready names it, the readable head stands
  leases    advisory locks (projection leases) held, by vigil process
  takeover  seconds until a survivor holds every lease
  hog       take every PostgreSQL connection for a while (connection exhaustion)
  badinput  the bad-request corpus and oversized bodies

PostgreSQL is reached with psql and the VIGIL_PG_* variables.
"""

import argparse
import base64
import http.client
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- HTTP


def request(base, method, path, body=None, headers=None, timeout=5.0):
    """One request on a fresh connection → (status, body bytes, headers, seconds); status 0 on
    a transport error (refused, reset, timeout)."""
    url = urllib.parse.urlsplit(base)
    started = time.monotonic()
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        all_headers = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, data, dict(response.getheaders()), time.monotonic() - started
    except (OSError, http.client.HTTPException) as error:
        return 0, str(error).encode(), {}, time.monotonic() - started
    finally:
        connection.close()


def seed_error(data):
    """True when an error body is the seed's format: a JSON object with `detail`."""
    try:
        value = json.loads(data)
    except ValueError:
        return False
    return isinstance(value, dict) and "detail" in value


def get_json(base, path, timeout=5.0):
    status, data, _, _ = request(base, "GET", path, timeout=timeout)
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {data[:200]!r}")
    return json.loads(data)


# ---------------------------------------------------------------- PostgreSQL


def psql(sql):
    env = dict(os.environ)
    command = [
        "psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
        "-h", env.get("VIGIL_PG_HOST", "127.0.0.1"), "-p", env["VIGIL_PG_PORT"],
        "-U", env.get("VIGIL_PG_USER", "vigil"), "-d", env.get("VIGIL_PG_DATABASE", "vigil"),
        "-c", sql,
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout
    return [line.split("\t") for line in output.splitlines() if line]


# ---------------------------------------------------------------- cameras, ingest, retry


def camera_ids(count):
    return [f"faults_cam{i}" for i in range(1, count + 1)]


FAULTS_RULE = "faults: every analysis"


def cmd_cameras(args):
    """The test cameras, and an alert rule that fires once for every analyzed event (so the
    verdict can check that no crash fires an alert twice or loses one), with the webhook channel
    (delivered when the scenario runs a receiver: lib.sh webhook_start)."""
    for camera in camera_ids(args.count):
        status, data, _, _ = request(
            args.url, "POST", "/api/cameras", {"name": camera, "folder_path": f"/faults/{camera}"})
        if status not in (201, 409):
            raise SystemExit(f"register {camera}: {status} {data[:200]!r}")
    status, data, _, _ = request(args.url, "GET", "/api/alerts/rules?limit=100")
    rules = json.loads(data).get("rules", []) if status == 200 else []
    if not any(rule.get("name") == FAULTS_RULE for rule in rules):
        status, data, _, _ = request(
            args.url, "POST", "/api/alerts/rules",
            {"name": FAULTS_RULE, "cooldown_seconds": 0, "dedup_key_template": "{event_id}",
             "channels": ["webhook"]})
        if status != 201:
            raise SystemExit(f"alert rule: {status} {data[:200]!r}")
    print(json.dumps({"cameras": camera_ids(args.count)}))


def detection(run, n, camera):
    rng = random.Random(f"{run}-{n}")
    kind = rng.choice(["person", "car", "dog", "person", "package"])
    return {
        "camera_id": camera,
        "file_path": f"/faults/{camera}/{run}-{n}.jpg",
        "object_type": kind,
        "confidence": round(rng.uniform(0.55, 0.95), 3),
        "bbox_x": rng.randint(0, 600), "bbox_y": rng.randint(0, 400),
        "bbox_width": rng.randint(10, 200), "bbox_height": rng.randint(10, 200),
    }


def post_detection(base, record, timeout):
    return request(
        base, "POST", "/api/detections", record["body"],
        {"Idempotency-Key": record["key"]}, timeout=timeout)


def cmd_ingest(args):
    """`threads` senders share the rate; request n goes to urls[n % len(urls)]. A sender that
    falls more than a second behind its schedule skips the missed slots rather than bursting."""
    urls = args.url.split(",")
    cameras = camera_ids(args.cameras)
    records = []
    lock = threading.Lock()
    stop_at = time.monotonic() + args.seconds
    interval = args.threads / args.rate

    def sender(index):
        n = index
        due = time.monotonic() + index / args.rate
        while True:
            now = time.monotonic()
            if due < now - 1.0:
                due = now
            if due >= stop_at:
                return
            if due > now:
                time.sleep(due - now)
            key = f"{args.run}-{n}"
            record = {"n": n, "key": key, "body": detection(args.run, n, cameras[n % len(cameras)]),
                      "url": urls[n % len(urls)], "sent_at": time.time()}
            status, data, _, seconds = post_detection(record["url"], record, args.timeout)
            record["status"] = status
            record["ms"] = round(seconds * 1000, 1)
            if 200 <= status < 300:
                record["id"] = json.loads(data).get("id")
            elif status >= 400:
                record["seed_format"] = seed_error(data)
                record["detail"] = data[:200].decode("utf-8", "replace")
            else:
                record["error"] = data[:200].decode("utf-8", "replace")
            with lock:
                records.append(record)
            n += args.threads
            due += interval

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records.sort(key=lambda r: r["n"])
    with open(args.out, "w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    statuses = {}
    for record in records:
        statuses[str(record["status"])] = statuses.get(str(record["status"]), 0) + 1
    print(json.dumps({"sent": len(records),
                      "acked": sum(1 for r in records if 200 <= r["status"] < 300),
                      "statuses": statuses}))


def load(path):
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def cmd_retry(args):
    """Each unacknowledged request again, same key and body (4 at a time): 200 means the first
    attempt was stored after all, 201 that it was not (and now is)."""
    records = load(args.input)
    deadline = time.monotonic() + args.timeout
    pending = [r for r in records if not 200 <= r["status"] < 300]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                record = pending.pop()
            while True:
                status, data, _, _ = post_detection(args.url, record, 10.0)
                if 200 <= status < 300:
                    record["retry_status"] = status
                    record["retry_id"] = json.loads(data).get("id")
                    break
                if time.monotonic() > deadline:
                    record["retry_status"] = status
                    break
                time.sleep(0.5)

    retried = len(pending)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(args.input, "w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    print(json.dumps({
        "retried": retried,
        "stored_before": sum(1 for r in records if r.get("retry_status") == 200),
        "absent_before": sum(1 for r in records if r.get("retry_status") == 201),
        "unresolved": sum(1 for r in records if "retry_status" in r and not 200 <= r["retry_status"] < 300),
    }))


# ---------------------------------------------------------------- verification


def verify(inputs):
    """Every acknowledged detection is in the log exactly once with the id it was answered
    with, and in the detections read model exactly once; nothing is in the log twice."""
    records = []
    for path in inputs:
        records += load(path)
    log_rows = psql(
        "SELECT data->>'file_path', count(*), min((data->>'id')::bigint), max((data->>'id')::bigint) "
        "FROM events WHERE type = 'DetectionRecorded' AND data->>'file_path' LIKE '/faults/%' GROUP BY 1")
    in_log = {row[0]: (int(row[1]), int(row[2]), int(row[3])) for row in log_rows}
    model_rows = psql(
        "SELECT file_path, count(*) FROM detections WHERE file_path LIKE '/faults/%' GROUP BY 1")
    in_model = {row[0]: int(row[1]) for row in model_rows}
    acked = [r for r in records if 200 <= r["status"] < 300]
    unacked = [r for r in records if not 200 <= r["status"] < 300]
    found = sum(1 for r in acked if r["body"]["file_path"] in in_log)
    lost = [r["key"] for r in acked if r["body"]["file_path"] not in in_log]
    wrong_id = [r["key"] for r in acked
                if r["body"]["file_path"] in in_log and in_log[r["body"]["file_path"]][1] != r.get("id")]
    duplicated = sum(1 for count, _, _ in in_log.values() if count > 1)
    sent_paths = {r["body"]["file_path"] for r in records}
    strangers = sum(1 for path in in_log if path not in sent_paths)
    unacked_present = sum(1 for r in unacked if r["body"]["file_path"] in in_log)
    retried = [r for r in unacked if "retry_status" in r]
    # A retry's answer says whether the first attempt had been stored: it must agree with
    # what the log held before… and after the retry every request is in the log once.
    projected_missing = sum(1 for path in in_log if in_model.get(path, 0) == 0)
    projected_twice = sum(1 for count in in_model.values() if count > 1)
    result = {
        "sent": len(records), "acked": len(acked), "found": found, "lost": len(lost),
        "duplicated": duplicated, "wrong_id": len(wrong_id), "unacked": len(unacked),
        "unacked_in_log": unacked_present,
        "retry_200": sum(1 for r in retried if r["retry_status"] == 200),
        "retry_201": sum(1 for r in retried if r["retry_status"] == 201),
        "retry_failed": sum(1 for r in retried if not 200 <= r["retry_status"] < 300),
        "in_log": len(in_log), "strangers": strangers,
        "projected_missing": projected_missing, "projected_twice": projected_twice,
    }
    if lost:
        log(f"lost: {lost[:20]}")
    if wrong_id:
        log(f"wrong id: {wrong_id[:20]}")
    return result


def cmd_verify(args):
    print(json.dumps(verify(args.input)))


def cmd_batches(args):
    print(json.dumps(batches()))


def batches():
    """No security event closed twice, no detection in two batches, every opened batch closed
    at most once, and the read model has one row per opened event."""
    closed_twice = int(psql(
        "SELECT count(*) FROM (SELECT data->>'id' FROM events WHERE type = 'SecurityEventClosed' "
        "GROUP BY 1 HAVING count(*) > 1) t")[0][0])
    opened_twice = int(psql(
        "SELECT count(*) FROM (SELECT data->>'id' FROM events WHERE type = 'SecurityEventOpened' "
        "GROUP BY 1 HAVING count(*) > 1) t")[0][0])
    in_two = int(psql(
        "SELECT count(*) FROM (SELECT d FROM events e, jsonb_array_elements_text(e.data->'detection_ids') d "
        "WHERE e.type = 'SecurityEventClosed' GROUP BY d HAVING count(DISTINCT e.data->>'id') > 1) t")[0][0])
    opened = int(psql("SELECT count(*) FROM events WHERE type = 'SecurityEventOpened'")[0][0])
    closed = int(psql("SELECT count(*) FROM events WHERE type = 'SecurityEventClosed'")[0][0])
    analyzed = int(psql("SELECT count(DISTINCT data->>'id') FROM events WHERE type = 'SecurityEventAnalyzed'")[0][0])
    # A job delivered twice (at least once, e.g. published again after a crash) is analyzed
    # twice: allowed, reported.
    analyzed_twice = int(psql(
        "SELECT count(*) FROM (SELECT data->>'id' FROM events WHERE type = 'SecurityEventAnalyzed' "
        "GROUP BY 1 HAVING count(*) > 1) t")[0][0])
    # The faults rule fires once for every analyzed event: never twice, none missing.
    alerts_twice = int(psql(
        "SELECT count(*) FROM (SELECT data->>'rule_id', data->>'event_id' FROM events "
        "WHERE type = 'AlertTriggered' GROUP BY 1, 2 HAVING count(*) > 1) t")[0][0])
    alerted = int(psql(
        "SELECT count(DISTINCT data->>'event_id') FROM events WHERE type = 'AlertTriggered' "
        f"AND data->>'rule_name' = '{FAULTS_RULE}'")[0][0])
    return {"opened": opened, "closed": closed, "closed_twice": closed_twice,
            "opened_twice": opened_twice, "detections_in_two_batches": in_two,
            "analyzed": analyzed, "analyzed_twice": analyzed_twice,
            "alerts_twice": alerts_twice, "alerts_missing": analyzed - alerted}


def projections(base):
    return get_json(base, "/api/projections")["projections"]


def cmd_quiet(args):
    result = quiet(args.url, args.timeout, args.still)
    print(json.dumps(result))
    if not result["quiet"]:
        sys.exit(1)


def quiet(url, timeout, still=4):
    """Every projection live, not rebuilding, lag 0, and the head unchanged for `still` s."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    head, still_since = None, time.monotonic()
    last = []
    while time.monotonic() < deadline:
        try:
            last = projections(url)
        except (RuntimeError, ValueError) as error:
            log(f"quiet: {error}")
            time.sleep(0.5)
            continue
        heads = {p.get("head") for p in last}
        current = max((h for h in heads if h), default=None)
        if current != head:
            head, still_since = current, time.monotonic()
        caught_up = all(p["lag_events"] == 0 and p["state"] == "live" and not p.get("rebuild") for p in last)
        if caught_up and time.monotonic() - still_since >= still:
            return {"quiet": True, "seconds": round(still_since - started, 1), "head": head,
                    "states": {p["name"]: p["state"] for p in last}}
        time.sleep(0.5)
    log("not quiet: " + json.dumps([{k: p.get(k) for k in ("name", "state", "lag_events", "last_error")}
                                    for p in last]))
    return {"quiet": False, "states": {p["name"]: [p["state"], p["lag_events"]] for p in last}}


def checksums(name, generation):
    schema = f"projection_{name}_{generation}"
    tables = [row[0] for row in psql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = "
        f"'{schema}' AND table_type = 'BASE TABLE' ORDER BY 1")]
    sums = {}
    for table in tables:
        row = psql(f'SELECT count(*), coalesce(md5(string_agg(t::text, E\'\\n\' ORDER BY t::text)), \'\') '
                   f'FROM "{schema}"."{table}" t')[0]
        sums[table] = f"{row[0]}:{row[1]}"
    return sums


def cmd_rebuild(args):
    print(json.dumps(rebuild(args.url, args.timeout)))


def rebuild(url, timeout):
    """A read model that went through the faults must equal one built from scratch: checksum
    of every table of the live generation, a rebuild, the same checksums of the new one."""
    compared, equal, diffs, skipped = 0, 0, [], []
    for projection in projections(url):
        name = projection["name"]
        before_generation = projection["generation"]
        before = checksums(name, before_generation)
        status, data, _, _ = request(url, "POST", f"/api/projections/{name}/rebuild")
        if status == 409:
            skipped.append(name)  # a reactor: its output is in the log
            continue
        if status != 202:
            diffs.append(f"{name}: rebuild answered {status} {data[:100]!r}")
            compared += 1
            continue
        deadline = time.monotonic() + timeout
        current = projection
        while time.monotonic() < deadline:
            current = next(p for p in projections(url) if p["name"] == name)
            if current["generation"] != before_generation and not current.get("rebuild") \
                    and current["lag_events"] == 0:
                break
            time.sleep(0.5)
        compared += 1
        if current["generation"] == before_generation:
            diffs.append(f"{name}: rebuild did not finish in {timeout} s")
            continue
        after = checksums(name, current["generation"])
        if after == before and before:
            equal += 1
        else:
            diffs.append(f"{name}: {before} != {after}")
    for diff in diffs:
        log(f"rebuild: {diff}")
    return {"compared": compared, "equal": equal, "skipped": skipped}


def cmd_judge(args):
    """The ingest scenarios' verdict: wait until the projections are quiet, verify the log and
    read models against what was acknowledged, check the batches, compare every read model with
    a rebuild; print `PASS|FAIL counts…` (extra `--note k=v` pairs first)."""
    q = quiet(args.url, args.timeout)
    v = verify(args.input)
    b = batches()
    r = rebuild(args.url, args.timeout) if args.rebuild else {"compared": 0, "equal": 0}
    log(f"quiet: {json.dumps(q)}")
    log(f"verify: {json.dumps(v)}")
    log(f"batches: {json.dumps(b)}")
    log(f"rebuild: {json.dumps(r)}")
    ok = (v["lost"] == 0 and v["duplicated"] == 0 and v["wrong_id"] == 0 and v["acked"] > 0
          and v["found"] == v["acked"] and v["retry_failed"] == 0 and v["strangers"] == 0
          and v["in_log"] == v["sent"] and v["projected_missing"] == 0 and v["projected_twice"] == 0
          and b["closed_twice"] == 0 and b["opened_twice"] == 0 and b["detections_in_two_batches"] == 0
          and b["closed"] > 0 and b["analyzed"] > 0 and q["quiet"]
          and b["alerts_twice"] == 0 and b["alerts_missing"] == 0
          and (not args.rebuild or (r["compared"] > 0 and r["equal"] == r["compared"])))
    failed_notes = [note for note in args.note if note.endswith("!")]
    notes = " ".join(note.rstrip("!") for note in args.note)
    line = (f"{notes} acked={v['acked']} found={v['found']} lost={v['lost']} duplicated={v['duplicated']} "
            f"unacked={v['unacked']} (stored {v['retry_200']}, absent {v['retry_201']}) "
            f"wrong_id={v['wrong_id']} projected_missing={v['projected_missing']} "
            f"batches_closed={b['closed']} closed_twice={b['closed_twice']} "
            f"in_two_batches={b['detections_in_two_batches']} analyzed={b['analyzed']} "
            f"(twice {b['analyzed_twice']}) alerts_twice={b['alerts_twice']} "
            f"alerts_missing={b['alerts_missing']} resumed={'yes' if q['quiet'] else 'no'}")
    if args.rebuild:
        line += f" rebuild_equal={r['equal']}/{r['compared']}"
    print(("PASS" if ok and not failed_notes else "FAIL") + " " + line.strip())


def ready_says_not_ready(data):
    try:
        return json.loads(data).get("status") == "not_ready"
    except (ValueError, AttributeError):
        return False


def cmd_probe(args):
    """While a dependency is down: GET /ready and the given routes every half second for
    `--seconds`; report status counts, the slowest answer and whether every error was in the
    seed's format."""
    stop = time.monotonic() + args.seconds
    counts, slowest, bad_format, samples = {}, 0.0, 0, {}
    paths = ["/ready"] + args.path
    while time.monotonic() < stop:
        for path in paths:
            status, data, _, seconds = request(args.url, "GET", path, timeout=args.timeout)
            key = f"{path.split('?')[0]}:{status}"
            counts[key] = counts.get(key, 0) + 1
            slowest = max(slowest, seconds)
            # /ready has a shape of its own ({"status": "not_ready", "checks": …}).
            if path == "/ready":
                if status != 200 and not ready_says_not_ready(data):
                    bad_format += 1
            elif status >= 400 and not seed_error(data):
                bad_format += 1
            samples.setdefault(key, data[:300].decode("utf-8", "replace"))
        time.sleep(0.5)
    for key, sample in samples.items():
        log(f"probe {key}: {sample}")
    print(json.dumps({"counts": counts, "slowest_ms": round(slowest * 1000), "not_seed_format": bad_format}))


def cmd_follow(args):
    """A log tail as a client runs one: /api/log from the start, following next_checkpoint,
    for `--seconds`, then until it has caught up. Compares what it read with the log table:
    no detection missed, none read twice."""
    after, seen, pages = "", [], 0
    stop = time.monotonic() + args.seconds
    while True:
        status, data, _, _ = request(
            args.url, "GET", f"/api/log?after={after}&limit=500&types=DetectionRecorded", timeout=10)
        if status != 200:
            time.sleep(0.5)
            if time.monotonic() > stop + 60:
                break
            continue
        page = json.loads(data)
        pages += 1
        seen += [event["event_id"] for event in page["events"]]
        after = page["next_checkpoint"] or after
        if not page["has_more"]:
            if time.monotonic() > stop:
                break
            time.sleep(0.3)
    in_log = {row[0] for row in psql("SELECT event_id FROM events WHERE type = 'DetectionRecorded'")}
    print(json.dumps({"read": len(seen), "read_twice": len(seen) - len(set(seen)),
                      "missed": len(in_log - set(seen)), "in_log": len(in_log), "pages": pages}))


def ws_open(base, path):
    """A WebSocket handshake on `base` (http://host:port) for `path`; the socket and any bytes
    read past the 101."""
    parsed = urllib.parse.urlparse(base)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {parsed.hostname}:{parsed.port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        buffer += chunk
    head, rest = buffer.split(b"\r\n\r\n", 1)
    if b" 101 " not in head.split(b"\r\n")[0]:
        sock.close()
        raise ConnectionError(head.split(b"\r\n")[0].decode("latin-1"))
    return sock, rest


def ws_send(sock, opcode, payload):
    """One masked frame (a client's frames are masked)."""
    mask = os.urandom(4)
    header = bytes([0x80 | opcode])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
    sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


def ws_frames(sock, buffer, deadline):
    """(opcode, payload) of every frame the server sends, until it closes or `deadline()` is
    true (checked every second); answers pings."""
    sock.settimeout(1.0)
    while True:
        while True:
            if len(buffer) >= 2:
                length, start = buffer[1] & 0x7F, 2
                if length == 126 and len(buffer) >= 4:
                    length, start = struct.unpack(">H", buffer[2:4])[0], 4
                elif length == 127 and len(buffer) >= 10:
                    length, start = struct.unpack(">Q", buffer[2:10])[0], 10
                if length < 126 or start > 2:
                    if len(buffer) >= start + length:
                        break
            if deadline():
                return
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return
            buffer += chunk
        opcode, payload, buffer = buffer[0] & 0x0F, buffer[start:start + length], buffer[start + length:]
        if opcode == 0x9:
            ws_send(sock, 0xA, payload)
            continue
        if opcode == 0x8:
            yield opcode, payload
            return
        yield opcode, payload


def cmd_wsfollow(args):
    """Follows /ws/log?types=DetectionRecorded from when it starts (once subscribed it prints
    `{"subscribed": …}` on stderr for the scenario to wait on) until `--stop-file` exists and
    nothing has come for 3 s, or `--seconds` at most. A dropped socket is opened again from the
    last checkpoint it got. Then compares with the log table: every `/faults/` detection
    received once, in log order."""
    after, last = "", ""
    received, twice, out_of_order, reconnects, closes = [], 0, 0, 0, []
    seen = set()
    stop = time.monotonic() + args.seconds
    heard = time.monotonic()
    first = True
    while True:
        done = lambda: (os.path.exists(args.stop_file) and time.monotonic() - heard > 3) or time.monotonic() > stop
        if done():
            break
        try:
            sock, rest = ws_open(args.url, "/ws/log?types=DetectionRecorded" + (f"&after={after}" if after else ""))
        except OSError as error:
            log(f"wsfollow: cannot open ({error}); again")
            time.sleep(0.5)
            continue
        try:
            for opcode, payload in ws_frames(sock, rest, done):
                if opcode == 0x8:
                    closes.append(struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005)
                    break
                if opcode != 0x1:
                    continue
                message = json.loads(payload)
                if message.get("type") == "subscribed":
                    after = after or message["checkpoint"]
                    if first:
                        log(json.dumps({"subscribed": message["checkpoint"]}))
                        first = False
                    continue
                if message.get("type") != "event":
                    continue
                heard = time.monotonic()
                checkpoint = message["checkpoint"]
                if checkpoint <= last:
                    out_of_order += 1
                last = after = checkpoint
                event_id = message["data"]["event_id"]
                if event_id in seen:
                    twice += 1
                seen.add(event_id)
                received.append(message["data"]["data"].get("file_path", ""))
        except OSError as error:
            log(f"wsfollow: socket dropped ({error})")
        finally:
            sock.close()
        if not done():
            reconnects += 1
            time.sleep(0.2)
    in_log = {row[0] for row in psql(
        "SELECT data->>'file_path' FROM events WHERE type = 'DetectionRecorded' "
        "AND data->>'file_path' LIKE '/faults/%'")}
    got = {path for path in received if path.startswith("/faults/")}
    print(json.dumps({"received": len(received), "twice": twice, "out_of_order": out_of_order,
                      "missed": len(in_log - got), "in_log": len(in_log), "reconnects": reconnects,
                      "closes": closes}))


def cmd_horizon(args):
    """While a foreign session holds a transaction: how often /ready names it as the holder of
    the read horizon, and how far the readable head moved (it must stand still: the events
    committed meanwhile wait behind the horizon) while the log itself grew."""
    stop = time.monotonic() + args.seconds
    named, samples, heads = 0, 0, []
    rows_before = int(psql("SELECT count(*) FROM events")[0][0])
    while time.monotonic() < stop:
        status, data, _, _ = request(args.url, "GET", "/ready", timeout=5)
        # A sample counts only if the session was still open when the answer came.
        still_open = psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                          f"'{args.application}' AND backend_xid IS NOT NULL")[0][0] == "1"
        if status == 200 and still_open:
            body = json.loads(data)
            samples += 1
            holder = body.get("log", {}).get("horizon_held_by") or {}
            if holder.get("application") == args.application:
                named += 1
                heads.append(body["log"]["head"])
            else:
                log(f"horizon: held by {holder}")
        time.sleep(0.5)
    rows_after = int(psql("SELECT count(*) FROM events")[0][0])
    print(json.dumps({"samples": samples, "named": named, "distinct_heads": len(set(heads)),
                      "appended_meanwhile": rows_after - rows_before}))


def leases():
    """Advisory locks held, by the operating-system pid of the process whose connection holds
    them (PostgreSQL's client port mapped through `ss`)."""
    rows = psql("SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted")
    owners = {}
    for line in subprocess.run(["ss", "-tnpH"], capture_output=True, text=True).stdout.splitlines():
        fields = line.split()
        if len(fields) < 6 or "pid=" not in line:
            continue
        port = fields[3].rsplit(":", 1)[-1]
        pid = line.split("pid=", 1)[1].split(",", 1)[0]
        owners[port] = pid
    counts = {}
    for (port,) in rows:
        owner = owners.get(port, "?")
        counts[owner] = counts.get(owner, 0) + 1
    return counts


def cmd_leases(args):
    print(json.dumps(leases()))


def cmd_takeover(args):
    """After the holder died: seconds until the survivor holds `--expect` leases."""
    started = time.monotonic()
    last = {}
    while time.monotonic() - started < args.timeout:
        last = leases()
        if last.get(args.survivor, 0) >= args.expect:
            print(json.dumps({"seconds": round(time.monotonic() - started, 1), "leases": last}))
            return
        time.sleep(0.2)
    print(json.dumps({"seconds": None, "leases": last}))


def cmd_analyzed(args):
    """Wait until every security event that was opened has been analyzed (its job reached an
    analyzer through Redis and the result is in the log)."""
    deadline = time.monotonic() + args.timeout
    while True:
        b = batches()
        if b["analyzed"] >= b["opened"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    print(json.dumps({"opened": b["opened"], "analyzed": b["analyzed"],
                      "not_analyzed": b["opened"] - b["analyzed"], "analyzed_twice": b["analyzed_twice"]}))


def cmd_answers(args):
    """What the ingest client got: counts of 5xx other than 503, errors not in the seed's
    format, the slowest 503."""
    records = load(args.input)
    print(json.dumps({
        "status_500": sum(1 for r in records if r["status"] >= 500 and r["status"] != 503),
        "status_503": sum(1 for r in records if r["status"] == 503),
        "transport_errors": sum(1 for r in records if r["status"] == 0),
        "not_seed_format": sum(1 for r in records if r["status"] >= 400 and not r.get("seed_format")),
        "slowest_503_ms": max((r["ms"] for r in records if r["status"] == 503), default=0),
    }))


# ---------------------------------------------------------------- connections


def pg_messages(sock, what):
    """The server's messages (kind, body) up to and including ReadyForQuery; an ErrorResponse
    raises with its text."""
    buffer = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed during {what}")
        buffer += chunk
        while len(buffer) >= 5:
            kind = buffer[0:1]
            length = struct.unpack("!i", buffer[1:5])[0]
            if len(buffer) < 1 + length:
                break
            body, buffer = buffer[5:1 + length], buffer[1 + length:]
            if kind == b"E":
                raise ConnectionError(body.decode("utf-8", "replace"))
            yield kind, body
            if kind == b"Z":
                return


def pg_connect(host, port, user, database):
    """A PostgreSQL session (trust authentication): the startup message, then wait for
    ReadyForQuery. Returns the socket, or raises with the server's error."""
    sock = socket.create_connection((host, port), timeout=10)
    params = f"user\0{user}\0database\0{database}\0application_name\0faults-hog\0\0".encode()
    sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    for _ in pg_messages(sock, "startup"):
        pass
    return sock


def pg_query_one(sock, sql):
    """Simple query on a session from pg_connect → the first column of the first row."""
    payload = sql.encode() + b"\0"
    sock.sendall(b"Q" + struct.pack("!i", 4 + len(payload)) + payload)
    value = None
    for kind, body in pg_messages(sock, "query"):
        if kind == b"D" and value is None:
            size = struct.unpack("!i", body[2:6])[0]
            value = body[6:6 + size].decode() if size >= 0 else None
    return value


def cmd_hog(args):
    """A foreign client that takes every connection PostgreSQL will give, ends Vigil's own
    sessions (all but its availability probe) so that Vigil has to connect again, and for
    `--seconds` keeps taking every slot that frees up; then lets them all go."""
    held, refusal = [], None

    def grab():
        nonlocal refusal
        try:
            held.append(pg_connect(args.host, args.port, args.user, args.database))
            return True
        except (OSError, ConnectionError) as failure:
            refusal = str(failure)[:120]
            return False

    while len(held) < 2000 and grab():
        pass
    initially = len(held)
    terminated = int(pg_query_one(held[0], (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'vigil' AND pid <> pg_backend_pid()")) or 0) if held else 0
    stop = time.monotonic() + args.seconds
    peak = len(held)
    while time.monotonic() < stop:
        while grab():
            pass
        peak = max(peak, len(held))
        time.sleep(0.02)
    vigil_sessions = pg_query_one(held[0], "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vigil'") \
        if held else None
    for sock in held:
        sock.close()
    print(json.dumps({"held_initially": initially, "terminated": terminated, "held_at_peak": peak,
                      "vigil_sessions_at_end": int(vigil_sessions or 0), "refused_with": refusal}))


# ---------------------------------------------------------------- bad input


def corpus():
    """(name, method, path, body bytes or None, headers). Each must get a 4xx in the seed's
    format, and none may write anything."""
    good = json.dumps(detection("bad", 0, "faults_cam1")).encode()
    deep = ("[" * 100000 + "]" * 100000).encode()
    deep_object = ('{"a":' * 50000 + "1" + "}" * 50000).encode()
    j = {"Content-Type": "application/json"}
    n = {"Content-Type": "application/x-ndjson"}
    cases = [
        ("deep-array", "POST", "/api/detections", deep, j),
        ("deep-object", "POST", "/api/detections", deep_object, j),
        ("deep-batch", "POST", "/api/detections/batch", deep, j),
        ("deep-camera", "POST", "/api/cameras", deep_object, j),
        ("invalid-utf8", "POST", "/api/detections", good.replace(b"faults_cam1", b"faults_\xff\xfe"), j),
        ("invalid-utf8-camera", "POST", "/api/cameras", b'{"name": "\xc3\x28", "folder_path": "/x"}', j),
        ("invalid-utf8-ndjson", "POST", "/api/detections/batch", good.replace(b"faults", b"\xed\xa0\x80") + b"\n", n),
        ("nul-in-string", "POST", "/api/cameras", b'{"name": "a\\u0000b", "folder_path": "/nul"}', j),
        ("truncated-json", "POST", "/api/detections", good[:-5], j),
        ("trailing-garbage", "POST", "/api/detections", good + b"}}", j),
        ("duplicate-keys", "POST", "/api/cameras", b'{"name": "dupkey", "name": "dupkey2", "folder_path": "/dup"}', j),
        ("number-overflow", "POST", "/api/detections", good.replace(b'"bbox_x": ', b'"bbox_x": 1e400, "x": '), j),
        ("huge-integer", "POST", "/api/detections",
         json.dumps({**json.loads(good), "bbox_x": 10 ** 40}).encode(), j),
        ("not-an-object", "POST", "/api/detections", b'"hello"', j),
        ("null-body", "POST", "/api/detections", b"null", j),
        ("empty-body", "POST", "/api/detections", b"", j),
        ("empty-batch", "POST", "/api/detections/batch", b"[]", j),
        ("wrong-content-type", "POST", "/api/detections", good, {"Content-Type": "text/plain"}),
        ("form-content-type", "POST", "/api/cameras", b"name=x&folder_path=/y",
         {"Content-Type": "application/x-www-form-urlencoded"}),
        ("xml-content-type", "POST", "/api/detections/batch", b"<a/>", {"Content-Type": "application/xml"}),
        ("huge-limit", "GET", "/api/detections?limit=1000000000000000000000", None, {}),
        ("negative-limit", "GET", "/api/detections?limit=-1", None, {}),
        ("zero-limit", "GET", "/api/events?limit=0", None, {}),
        ("negative-offset", "GET", "/api/detections?offset=-5", None, {}),
        ("huge-offset", "GET", "/api/events?offset=99999999999999999999", None, {}),
        ("text-limit", "GET", "/api/cameras?limit=ten", None, {}),
        ("malformed-cursor", "GET", "/api/detections?cursor=%%%not-base64", None, {}),
        ("forged-cursor", "GET", "/api/events?cursor=eyJ4IjoxfQ", None, {}),
        ("cursor-and-offset", "GET", "/api/detections?cursor=abc&offset=3", None, {}),
        ("malformed-checkpoint", "GET", "/api/log?after=zzzz", None, {}),
        ("short-checkpoint", "GET", "/api/log?after=0000", None, {}),
        ("future-checkpoint", "GET", "/api/log?after=ffffffffffffffffffffffffffffffff", None, {}),
        ("log-huge-limit", "GET", "/api/log?limit=99999999999", None, {}),
        ("stream-negative-version", "GET", "/api/streams/camera-x?from_version=-3", None, {}),
        ("bad-date", "GET", "/api/detections?start_date=2026-13-45", None, {}),
        ("bad-confidence", "GET", "/api/detections?min_confidence=NaN", None, {}),
        ("analytics-no-dates", "GET", "/api/analytics/detection-trends", None, {}),
        ("analytics-range", "GET", "/api/analytics/detection-trends?start_date=0001-01-01&end_date=9999-12-31", None, {}),
        ("id-overflow", "GET", "/api/detections/99999999999999999999999", None, {}),
        ("id-negative", "GET", "/api/events/-1", None, {}),
        ("path-traversal", "GET", "/api/cameras/..%2F..%2Fetc%2Fpasswd", None, {}),
        ("path-traversal-media", "GET", "/api/media/../../etc/passwd", None, {}),
        ("camera-traversal-folder", "POST", "/api/cameras", b'{"name": "trav", "folder_path": "/a/../../etc"}', j),
        ("unknown-camera", "POST", "/api/detections", good.replace(b"faults_cam1", b"no_such_camera"), j),
        ("confidence-range", "POST", "/api/detections",
         json.dumps({**json.loads(good), "confidence": 7}).encode(), j),
        ("date-year-0", "POST", "/api/detections",
         json.dumps({**json.loads(good), "detected_at": "0000-01-01T00:00:00Z"}).encode(), j),
        ("date-garbage", "POST", "/api/detections",
         json.dumps({**json.loads(good), "detected_at": "yesterday"}).encode(), j),
        ("batch-one-bad", "POST", "/api/detections/batch",
         json.dumps([json.loads(good), {**json.loads(good), "bbox_width": 0}]).encode(), j),
        ("severity-unordered", "PUT", "/api/system/severity", b'{"low_max": 90, "medium_max": 10, "high_max": 50}', j),
        ("config-extra-field", "PATCH", "/api/system/config", b'{"retention_dayz": 3}', j),
        ("config-wrong-type", "PATCH", "/api/system/config", b'{"retention_days": "3"}', j),
        ("review-wrong-type", "PATCH", "/api/events/1", b'{"reviewed": "yes"}', j),
        ("analysis-unknown-event", "POST", "/api/events/999999999/analysis", b'{"risk_score": 5, "summary": "x"}', j),
        ("rebuild-unknown", "POST", "/api/projections/nope/rebuild", None, {}),
        ("idempotency-key-reuse", "POST", "/api/detections",
         json.dumps({**json.loads(good), "file_path": "/faults/faults_cam1/other.jpg"}).encode(),
         {**j, "Idempotency-Key": "bad-input-reused"}),
        ("method-not-allowed", "DELETE", "/api/detections", None, {}),
        ("unknown-route", "GET", "/api/nothing-here", None, {}),
    ]
    return cases


def announced_body(base, path, length):
    """A POST whose Content-Length announces `length` bytes of which only 1 KiB is sent; the
    answer must come without the rest."""
    url = urllib.parse.urlsplit(base)
    started = time.monotonic()
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    try:
        sock.sendall((f"POST {path} HTTP/1.1\r\nHost: {url.hostname}\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {length}\r\n\r\n").encode() + b"[" + b" " * 1023)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
        head, _, body = response.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        size = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                     if line.lower().startswith(b"content-length:")), 0)
        while len(body) < size:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, body, time.monotonic() - started
    except OSError as error:
        return 0, str(error).encode(), time.monotonic() - started
    finally:
        sock.close()


def cmd_badinput(args):
    good = detection("bad", 0, "faults_cam1")
    # The key the reuse case sends with a different body.
    request(args.url, "POST", "/api/detections", good, {"Idempotency-Key": "bad-input-reused"})
    # What requests write; the batch aggregator and the analyzer go on appending the security
    # event of the setup's detection meanwhile.
    # A refused command leaves only its audit record (CommandRejected, the audit trail's
    # `failure` entries): anything else is data a bad request wrote.
    writes = "SELECT count(*) FROM events WHERE type NOT LIKE 'SecurityEvent%' AND type <> 'CommandRejected'"
    refusals = "SELECT count(*) FROM events WHERE type = 'CommandRejected'"
    before = psql(writes)[0][0]
    refused_before = psql(refusals)[0][0]
    results = {"cases": 0, "status_5xx": 0, "not_seed_format": 0, "transport_errors": 0, "2xx": 0}
    lines = []
    for name, method, path, body, headers in corpus():
        status, data, _, seconds = request(args.url, method, path, body, headers, timeout=30)
        results["cases"] += 1
        if status == 200 and headers.get("Content-Type") == "application/x-ndjson":
            # NDJSON answers with a per-line report: every line must be rejected.
            try:
                report = json.loads(data)
                if report.get("accepted") == 0 and report.get("rejected", 0) >= 1:
                    status, data = 422, json.dumps({"detail": report["errors"]}).encode()
            except ValueError:
                pass
        ok_format = seed_error(data) if status >= 400 else True
        if status == 0:
            results["transport_errors"] += 1
        elif status >= 500:
            results["status_5xx"] += 1
        elif status < 300:
            results["2xx"] += 1
            results.setdefault("unexpected", []).append(f"{name}:{status}")
        if status >= 400 and not ok_format:
            results["not_seed_format"] += 1
        lines.append(f"{name:28} {status} {seconds * 1000:7.1f} ms {data[:90]!r}")
    # Oversized bodies: one detection of 2 MB, a JSON batch over the limit, an NDJSON line over
    # the line cap.
    big_field = json.dumps({**good, "enrichment_data": {"blob": "x" * (3 * 1024 * 1024)}}).encode()
    long_line = json.dumps({**good, "enrichment_data": {"blob": "y" * (2 * 1024 * 1024)}}).encode() + b"\n"
    oversized = [
        ("oversized-detection", "/api/detections", big_field, {"Content-Type": "application/json"}),
        ("oversized-ndjson-line", "/api/detections/batch", long_line, {"Content-Type": "application/x-ndjson"}),
        ("oversized-camera", "/api/cameras", big_field, {"Content-Type": "application/json"}),
    ]
    results["oversized"] = 0
    results["oversized_413"] = 0
    for name, path, body, headers in oversized:
        status, data, _, seconds = request(args.url, "POST", path, body, headers, timeout=30)
        results["oversized"] += 1
        if status == 413 and seed_error(data):
            results["oversized_413"] += 1
        elif name == "oversized-ndjson-line" and status in (200, 413, 422) and seed_error(data) is not None:
            # The NDJSON path reports a line over the cap as a rejected line (per-line report).
            try:
                report = json.loads(data)
                if status == 200 and report.get("accepted") == 0 and report.get("rejected", 0) >= 1:
                    results["oversized_413"] += 1
            except ValueError:
                pass
        if status >= 500:
            results["status_5xx"] += 1
        lines.append(f"{name:28} {status} {seconds * 1000:7.1f} ms {data[:90]!r}")
    # A JSON batch over its 64 MiB limit, announced by Content-Length: refused before the body
    # is read (only its first KiB is sent).
    status, data, seconds = announced_body(args.url, "/api/detections/batch", 65 << 20)
    results["oversized"] += 1
    if status == 413 and seed_error(data):
        results["oversized_413"] += 1
    if status >= 500:
        results["status_5xx"] += 1
    lines.append(f"{'oversized-batch-announced':28} {status} {seconds * 1000:7.1f} ms {data[:90]!r}")
    after = psql(writes)[0][0]
    results["written"] = int(after) - int(before)
    results["refusals_audited"] = int(psql(refusals)[0][0]) - int(refused_before)
    if results["written"]:
        # Say what was written, newest last.
        for row in psql(
            "SELECT type, stream, data::text FROM events "
            "WHERE type NOT LIKE 'SecurityEvent%' AND type <> 'CommandRejected' "
            f"ORDER BY position DESC LIMIT {min(int(results['written']), 30)}"
        )[::-1]:
            log(f"written: {row}")
    for line in lines:
        log(line)
    print(json.dumps(results))


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("cameras")
    p.add_argument("--url", required=True)
    p.add_argument("--count", type=int, default=2)
    p = sub.add_parser("ingest")
    p.add_argument("--url", required=True, help="one URL, or several comma-separated (round robin)")
    p.add_argument("--rate", type=float, default=20)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--cameras", type=int, default=2)
    p.add_argument("--timeout", type=float, default=5)
    p.add_argument("--run", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("retry")
    p.add_argument("--url", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("verify")
    p.add_argument("--input", required=True, action="append")
    sub.add_parser("batches")
    p = sub.add_parser("quiet")
    p.add_argument("--url", required=True)
    p.add_argument("--timeout", type=float, default=90)
    p.add_argument("--still", type=float, default=4)
    p = sub.add_parser("rebuild")
    p.add_argument("--url", required=True)
    p.add_argument("--timeout", type=float, default=90)
    p = sub.add_parser("probe")
    p.add_argument("--url", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--path", action="append", default=[])
    p = sub.add_parser("follow")
    p.add_argument("--url", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p = sub.add_parser("wsfollow")
    p.add_argument("--url", required=True)
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--stop-file", required=True)
    p = sub.add_parser("horizon")
    p.add_argument("--url", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--application", default="faults-holder")
    sub.add_parser("leases")
    p = sub.add_parser("takeover")
    p.add_argument("--survivor", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("analyzed")
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("answers")
    p.add_argument("--input", required=True)
    p = sub.add_parser("judge")
    p.add_argument("--url", required=True)
    p.add_argument("--input", required=True, action="append")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--no-rebuild", dest="rebuild", action="store_false")
    p.add_argument("--note", action="append", default=[], help="k=v shown first; a trailing ! fails")
    p = sub.add_parser("hog")
    p.add_argument("--host", default=os.environ.get("VIGIL_PG_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("VIGIL_PG_PORT", "5432")))
    p.add_argument("--user", default=os.environ.get("VIGIL_PG_USER", "vigil"))
    p.add_argument("--database", default=os.environ.get("VIGIL_PG_DATABASE", "vigil"))
    p.add_argument("--seconds", type=float, required=True)
    p = sub.add_parser("badinput")
    p.add_argument("--url", required=True)
    args = parser.parse_args()
    globals()["cmd_" + args.command](args)


if __name__ == "__main__":
    main()
