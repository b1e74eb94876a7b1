"""Acknowledged data survives kill -9, with and without flushed Parquet files; a torn or
corrupt WAL tail never keeps Strata from starting; a second process on the same data
directory is refused and changes nothing."""

import json
import time

import requests

from conftest import SHARED

LOG = json.loads((SHARED / "otlp-examples" / "logs.json").read_text())


def send_logs(strata, bodies, tenant=None):
    req = json.loads(json.dumps(LOG))
    template = req["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    req["resourceLogs"][0]["scopeLogs"][0]["logRecords"] = [dict(template, body={"stringValue": b}) for b in bodies]
    headers = {"Content-Type": "application/json"}
    if tenant:
        headers["X-Scope-OrgID"] = tenant
    r = requests.post(strata.otlp_http + "/v1/logs", json=req, headers=headers, timeout=10)
    assert r.status_code == 200, r.text


def bodies(strata, tenant=None):
    return sorted(r["body"] for r in strata.sql("SELECT body FROM logs", tenant))


def test_kill9_keeps_acknowledged_writes(make_strata):
    s = make_strata().start()
    send_logs(s, [f"line {i}" for i in range(100)])
    s.kill9()
    s.start()
    assert bodies(s) == sorted(f"line {i}" for i in range(100))


def test_kill9_after_flush_has_no_loss_and_no_duplicates(make_strata, tmp_path):
    s = make_strata(config='[storage]\nflush_interval = "1s"\n').start()
    send_logs(s, ["flushed-1", "flushed-2"])
    deadline = time.time() + 20
    while time.time() < deadline and not list((s.data_dir / "files").rglob("*.parquet")):
        time.sleep(0.2)
    assert list((s.data_dir / "files").rglob("*.parquet")), "no Parquet file was written"
    send_logs(s, ["in-wal"])
    s.kill9()
    s.start()
    assert bodies(s) == ["flushed-1", "flushed-2", "in-wal"]


def test_a_second_process_on_the_same_data_dir_is_refused(make_strata):
    first = make_strata().start()
    send_logs(first, ["before the second start"])
    second = make_strata(data_dir=first.data_dir)
    try:
        second.start()
        raise AssertionError("a second Strata started on a data directory in use")
    except RuntimeError as e:
        message = str(e)
    assert "strata exited with 1" in message, message
    assert "data directory is in use" in message, message
    assert str(first.data_dir / "lock") in message, message
    # The refused process touched nothing: the first keeps its data and takes writes.
    send_logs(first, ["after the second start"])
    assert bodies(first) == ["after the second start", "before the second start"]
    first.kill9()
    first.start()
    assert bodies(first) == ["after the second start", "before the second start"]


def test_torn_and_corrupt_wal_tail_still_starts(make_strata):
    s = make_strata().start()
    send_logs(s, ["before-crash"])
    s.kill9()
    segments = sorted((s.data_dir / "wal").glob("*.wal"))
    newest = [p for p in segments if p.stat().st_size > 0][-1]
    with open(newest, "ab") as f:
        f.write(b"\x10\x00\x00\x00garbage-torn-record")
    s.start()
    assert bodies(s) == ["before-crash"]
    metrics = requests.get(s.api + "/metrics", timeout=5).text
    dropped = [l for l in metrics.splitlines() if l.startswith("strata_wal_corrupt_bytes_dropped_total ")]
    assert dropped and float(dropped[0].split()[1]) > 0
    send_logs(s, ["after-restart"])
    s.kill9()
    s.start()
    assert bodies(s) == ["after-restart", "before-crash"]


def test_tenants_are_isolated(strata):
    send_logs(strata, ["for-a"], tenant="team-a")
    send_logs(strata, ["for-b"], tenant="team-b")
    assert bodies(strata, "team-a") == ["for-a"]
    assert bodies(strata, "team-b") == ["for-b"]
    assert bodies(strata) == []
