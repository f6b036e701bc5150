"""The shared stack, end to end on 127.0.0.1 with real components.

PostgreSQL (a fresh schema) holds the metadata, moto's S3 server the artifacts
and the prediction log, Redis the prediction cache; three ``shipyard serve
--deployment web`` processes run behind nginx, all started from the pieces of
:mod:`shipyard.deploy.stack` that ``deploy/stack/run-local.sh`` uses. The load
is bounded in requests (and each wait in time).
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from live_server import SRC, free_port
from services import require_service, s3_client
from shipyard import Shipyard
from shipyard.cli.main import app
from shipyard.config import Settings
from shipyard.deploy.stack import (
    find_nginx,
    nginx_command,
    parse_access_log,
    reload_nginx,
    replica_command,
    replica_environment,
    write_stack_files,
)
from shipyard.errors import InvalidInputError
from shipyard.quickstart import iris_frame

# The stack tests share Redis db 0 (the servers' cache keys) and pick free ports the other
# could take before its processes bind them: they run one after the other, on one worker.
pytestmark = pytest.mark.xdist_group("shared-stack")


ROOT = Path(__file__).resolve().parents[2]
RULES = [ROOT / "deploy/prometheus/alerts.yml", ROOT / "deploy/prometheus/rollout-alerts.yml"]
POLL = 0.5
MONITOR = 1.0
THREADS = 4
CANARY = 30
#: Requests the split is measured on: 2 points is > 3 standard deviations at 30 %.
SPLIT_REQUESTS = 6000
SHARED_GAUGES = (
    "shipyard_monitor_window_predictions",
    "shipyard_dataset_drift_detected",
    "shipyard_drifted_features_ratio",
    "shipyard_feature_drift_score",
)


# -- the pieces ------------------------------------------------------------------------


def _redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).ping())
    except redis.RedisError:
        return False


class Replica:
    """One ``shipyard serve --deployment web`` process (its own process group)."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env, self.port = env, port
        self.address = f"127.0.0.1:{port}"
        self.url = f"http://{self.address}"
        self.proc: subprocess.Popen[str] | None = None
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed by close()

    def start(self) -> Replica:
        command = replica_command(
            "web",
            self.port,
            cache="redis://127.0.0.1:6379/0",
            poll_interval=POLL,
            monitor_interval=MONITOR,
        )
        self.proc = subprocess.Popen(
            [*command, "--log-level", "warning"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        return self

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def wait_ready(self, timeout: float = 120) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"replica exited:\n{self.output()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/ready", timeout=5).status_code == 200:
                    return
            time.sleep(0.1)
        raise AssertionError(f"{self.url} never became ready:\n{self.output()}")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM: drain, flush the prediction log, give the monitor lease up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def close(self) -> None:
        self.stop()
        self.log.close()


@dataclass(frozen=True)
class Outcome:
    done: float  # time.monotonic() when the answer (or the failure) arrived
    status: int  # 0: no HTTP answer at all
    replica: str
    variant: str
    version: int | None
    request_id: str | None


class Load:
    """``THREADS`` clients posting one iris record each to nginx, at most ``limit``
    requests, until :meth:`finish`."""

    def __init__(self, url: str, limit: int, seed: int) -> None:
        X, _ = iris_frame()
        self.records = X.sample(40, random_state=seed).to_dict("records")
        self.url, self.limit = url, limit
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sent = 0
        self._pool = ThreadPoolExecutor(THREADS)
        self._futures = [self._pool.submit(self._client, seed + i) for i in range(THREADS)]

    def _client(self, seed: int) -> None:
        rng = random.Random(seed)
        # One connection per request: a reload of nginx closes idle keep-alive
        # connections, and a request racing that close would fail in the client.
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self.url, timeout=60, limits=limits) as http:
            while not self._stop.is_set():
                with self._lock:
                    if self._sent >= self.limit:
                        return
                    self._sent += 1
                try:
                    r = http.post("/predict", json=rng.choice(self.records))
                except httpx.TransportError:
                    outcome = Outcome(time.monotonic(), 0, "", "", None, None)
                else:
                    body = r.json() if r.status_code == 200 else {}
                    outcome = Outcome(
                        time.monotonic(),
                        r.status_code,
                        r.headers.get("x-shipyard-replica", ""),
                        r.headers.get("x-shipyard-variant", ""),
                        body.get("version"),
                        body.get("request_id"),
                    )
                with self._lock:
                    self.outcomes.append(outcome)

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 120) -> None:
        """Wait (bounded) for ``check``; fail if the load ran out first."""
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            assert not all(f.done() for f in self._futures), f"load ran out before {what}"
            time.sleep(0.05)

    def finish(self, *, stop: bool = True) -> list[Outcome]:
        if stop:
            self._stop.set()
        for future in self._futures:
            future.result(timeout=300)
        self._pool.shutdown()
        return list(self.outcomes)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url + "/metrics", timeout=30).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def revision_of(replica: Replica) -> float:
    return scrape(replica.url).get(("shipyard_deployment_revision", (("deployment", "web"),)), -1.0)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def converge(replicas: list[Replica], revision: int) -> float:
    """Seconds until every replica routes by ``revision`` (read from its /metrics)."""
    started = time.monotonic()
    wait_until(lambda: all(revision_of(r) == revision for r in replicas), f"revision {revision}")
    return time.monotonic() - started


def reload_and_wait(nginx: subprocess.Popen[str]) -> None:
    """Reload nginx's configuration; return once only workers started after it serve."""
    master = psutil.Process(nginx.pid)
    old = {p.pid for p in master.children()}
    reload_nginx(nginx.pid)
    wait_until(
        lambda: (
            bool({p.pid for p in master.children()})
            and not old & {p.pid for p in master.children()}
        ),
        "nginx's old workers to finish",
        timeout=60,
    )


def cli(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


# -- the test ------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_three_replicas_behind_nginx_share_one_stack(
    postgres_url: str, s3_endpoint: str, s3_bucket: str, aws_env: None, tmp_path: Path
) -> None:
    require_service(_redis_available(), "Redis is not reachable at 127.0.0.1:6379")
    require_service(find_nginx() is not None, "nginx is not installed")
    require_service(shutil.which("promtool") is not None, "promtool is not installed")
    require_service(shutil.which("prometheus") is not None, "prometheus is not installed")

    shared = replica_environment(
        db=postgres_url, artifacts=f"s3://{s3_bucket}/artifacts", s3_endpoint_url=s3_endpoint
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(shared, SHIPYARD_HOME=str(tmp_path / "home"))
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    settings = Settings(
        home=tmp_path / "home", db=postgres_url, artifacts=shared["SHIPYARD_ARTIFACTS"],
        s3_endpoint_url=s3_endpoint, user="tester",
    )  # fmt: skip
    client = Shipyard(settings)
    X, y = iris_frame()
    for c in (1.0, 0.05):  # iris:1 and iris:2 differ
        model = LogisticRegression(C=c, max_iter=500).fit(X, y)
        client.registry.log_model(model, "iris", sample=X, optimize=False)
    cli(env, "deploy", "web", "--model", "iris:1")

    replicas = [Replica(env, free_port()) for _ in range(3)]
    listen = f"127.0.0.1:{free_port()}"
    nginx_conf, prometheus_yml = write_stack_files(
        tmp_path / "nginx",
        [r.address for r in replicas],
        listen=listen,
        rule_files=RULES,
        scrape_interval="1s",
    )
    checked = subprocess.run(
        ["promtool", "check", "config", str(prometheus_yml)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 2 rule files found" in checked.stdout
    nginx = subprocess.Popen(
        nginx_command(nginx_conf.parent),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    prometheus_url = f"http://127.0.0.1:{free_port()}"
    prometheus = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={prometheus_yml}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={prometheus_url.removeprefix('http://')}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{listen}"
    access_log = nginx_conf.parent / "access.log"
    try:
        for r in replicas:
            r.start()
        for r in replicas:
            r.wait_ready()
        wait_until(lambda: httpx.get(url + "/ready", timeout=5).status_code == 200, "nginx")

        # 1. A canary set with `shipyard deploy` reaches every replica.
        cli(env, "deploy", "web", "--model", "iris:2", "--canary", str(CANARY))
        revision = client.deployments.get("web").revision
        lag = converge(replicas, revision)
        print(f"canary revision {revision} on all 3 replicas {lag:.2f} s after the change")

        # 2. The split, measured at nginx (its access log), within 2 points of 30 %.
        before = access_log.stat().st_size
        load = Load(url, SPLIT_REQUESTS, seed=1)
        outcomes = load.finish(stop=False)
        assert {o.status for o in outcomes} == {200}
        with access_log.open() as f:
            f.seek(before)
            logged = [row for row in parse_access_log(f.read()) if row["variant"] != "-"]
        assert len(logged) == SPLIT_REQUESTS
        canary = sum(row["variant"] == "canary" for row in logged)
        share = 100 * canary / len(logged)
        print(f"canary share at nginx: {share:.2f} % of {len(logged)} (weight {CANARY} %)")
        assert abs(share - CANARY) <= 2
        assert canary == sum(o.variant == "canary" for o in outcomes)  # the log is right
        # nginx spread the load over all three replicas.
        per_replica = {r.address: 0 for r in replicas}
        for row in logged:
            per_replica[row["replica"]] += 1
        assert min(per_replica.values()) > SPLIT_REQUESTS / 10, per_replica
        acked = list(outcomes)

        # The prediction cache is Redis, shared: far fewer model calls than requests.
        samples = [scrape(r.url) for r in replicas]
        hits = sum(s.get(("shipyard_prediction_cache_hits_total", ()), 0) for s in samples)
        assert hits > SPLIT_REQUESTS / 2, hits

        # Prometheus scrapes all three, and loaded the alert rules.
        def scraped() -> bool:
            with contextlib.suppress(httpx.TransportError):
                up = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": "up"}).json()
                targets = {r["metric"]["instance"]: r["value"][1] for r in up["data"]["result"]}
                return targets == {r.address: "1" for r in replicas}
            return False

        wait_until(scraped, "Prometheus to scrape every replica")
        rules = httpx.get(f"{prometheus_url}/api/v1/rules").json()["data"]["groups"]
        assert sum(len(g["rules"]) for g in rules) >= 2

        # 3. The monitor runs once per window for each variant of the deployment (one
        # lease each in the database, so the primary's and the canary's may be held by
        # different replicas): only lease holders compute, and every replica shows the
        # same figures.
        def agreed() -> bool:
            samples = [scrape(r.url) for r in replicas]
            figures = [
                {k: v for k, v in s.items() if k[0] in SHARED_GAUGES and v == v} for s in samples
            ]
            leaders = [s.get(("shipyard_monitor_leader", ()), 0) for s in samples]
            return (
                1 <= sum(leaders) <= 2
                and bool(figures[0])
                and all(f == figures[0] for f in figures)
            )

        wait_until(agreed, "monitor lease holders and the same gauges on every replica")
        samples = [scrape(r.url) for r in replicas]
        runs = [s.get(("shipyard_monitor_runs_total", ()), 0) for s in samples]
        leaders = [s.get(("shipyard_monitor_leader", ()), 0) for s in samples]
        # Two variants, so at most two replicas computed figures, however the leases fell;
        # the others only show what the holders stored.
        assert sum(n > 0 for n in runs) <= 2 and sum(leaders) >= 1, (runs, leaders)

        # 4. Promote, then roll back, under load: no request fails.
        load = Load(url, 20_000, seed=2)
        load.wait_for(lambda: load.count() > 200, "traffic before promote")
        cli(env, "promote", "web")
        converge(replicas, client.deployments.get("web").revision)
        mark = load.count()
        load.wait_for(lambda: load.count() > mark + 200, "traffic after promote")
        cli(env, "rollback", "web", "--reason", "stack test")
        converge(replicas, client.deployments.get("web").revision)
        mark = load.count()
        load.wait_for(lambda: load.count() > mark + 200, "traffic after rollback")
        outcomes = load.finish()
        assert {o.status for o in outcomes} == {200}, [o for o in outcomes if o.status != 200][:5]
        assert {("primary", 2), ("primary", 1)} <= {(o.variant, o.version) for o in outcomes}
        assert outcomes[-1].version == 1 and outcomes[-1].variant == "primary"
        acked += outcomes

        # 5. A replica killed with SIGKILL: only its open connections fail, nginx routes
        # around it, and it takes traffic again once restarted.
        victim = replicas[0]
        load = Load(url, 20_000, seed=3)
        load.wait_for(lambda: load.count() > 300, "traffic before the kill")
        victim.kill()
        killed_at = time.monotonic()
        mark = load.count()
        load.wait_for(lambda: load.count() > mark + 300, "traffic after the kill")
        # Restarted the way run-local.sh does: left out of nginx until it is ready.
        addresses = [r.address for r in replicas]
        write_stack_files(nginx_conf.parent, addresses, listen=listen, down=[victim.address])
        reload_and_wait(nginx)
        victim.start()
        victim.wait_ready()
        write_stack_files(nginx_conf.parent, addresses, listen=listen)
        reload_and_wait(nginx)
        restarted_at = time.monotonic()
        load.wait_for(
            lambda: any(
                o.replica == victim.address and o.done > restarted_at for o in list(load.outcomes)
            ),
            "nginx to send traffic to the restarted replica",
        )
        outcomes = load.finish()
        failed = [o for o in outcomes if o.status != 200]
        print(f"kill: {len(failed)} of {len(outcomes)} requests failed")
        # At most one request in flight per client connection, and only on the victim.
        assert len(failed) <= THREADS, failed
        assert all(o.status == 502 and victim.address in o.replica for o in failed), failed
        after = [o for o in outcomes if o.done > killed_at + 1]
        assert after and all(o.status == 200 for o in after)
        # The dead incarnation's answers may have died with its buffered log: leave them out.
        # That is everything the victim's address answered before the new incarnation took
        # traffic: its server worker outlives the SIGKILLed parent briefly and keeps
        # answering, then exits with its buffer (seen: 54-104 answers after the kill).
        # Earlier stages' answers by the victim count as the dead incarnation's too: the
        # last of them were still in its buffer when it was killed.
        acked = [
            o
            for o in [*acked, *outcomes]
            if o.status == 200 and not (o.replica == victim.address and o.done <= restarted_at)
        ]
    finally:
        for r in replicas:
            r.stop()
        nginx.terminate()
        nginx.wait(30)
        prometheus.terminate()
        prometheus.wait(30)

    # 6. Every prediction a live replica acknowledged is in the shared log (in S3).
    frame = client.prediction_log.read("iris", since="2h", inputs=False)
    logged_ids = set(frame["request_id"])
    acked_ids = {o.request_id for o in acked}
    assert None not in acked_ids
    missing = acked_ids - logged_ids
    where = collections.Counter(
        (o.replica, "after restart" if o.done > restarted_at else "before restart")
        for o in acked
        if o.request_id in missing
    )
    assert not missing, (
        f"{len(missing)} of {len(acked_ids)} acknowledged predictions not logged, by replica "
        f"{dict(where)} (victim {victim.address})"
    )
    objects = s3_client(s3_endpoint).list_objects_v2(Bucket=s3_bucket)
    assert any("predictions" in o["Key"] for o in objects.get("Contents", []))
    for r in replicas:
        r.close()
    client.close()


# -- the configuration files -------------------------------------------------------------


def test_the_write_command_writes_configs_nginx_and_promtool_accept(tmp_path: Path) -> None:
    require_service(find_nginx() is not None, "nginx is not installed")
    require_service(shutil.which("promtool") is not None, "promtool is not installed")
    out = tmp_path / "stack"
    args = ["--out", str(out), "--listen", "127.0.0.1:8080"]
    args += ["--replica", "127.0.0.1:8001", "--replica", "127.0.0.1:8002"]
    args += ["--down", "127.0.0.1:8002"]  # being restarted: no traffic until ready
    for rule in RULES:
        args += ["--rules", str(rule)]
    run = subprocess.run(
        [sys.executable, "-m", "shipyard.deploy.stack", "write", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert run.returncode == 0, run.stderr
    assert (out / "temp" / "proxy").is_dir()
    tested = subprocess.run(
        [*nginx_command(out)[:1], "-t", *nginx_command(out)[1:]], capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stderr
    assert "test is successful" in tested.stderr
    text = (out / "nginx.conf").read_text()
    assert "server 127.0.0.1:8001 max_fails=1 fail_timeout=5s;" in text
    assert "server 127.0.0.1:8002 max_fails=1 fail_timeout=5s down;" in text
    assert "daemon off;" in text
    assert "non_idempotent" not in text  # a POST that reached a replica is never resent
    # Idle connections are dropped by nginx before a replica drops them (5 s): a POST sent
    # on one the replica just closed would be answered 502, never resent.
    assert "keepalive_timeout 4000ms;" in text
    checked = subprocess.run(
        ["promtool", "check", "config", str(out / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_bad_addresses_and_local_stores_get_one_line_errors(tmp_path: Path) -> None:
    args = ["--out", str(tmp_path), "--listen", "127.0.0.1:8080", "--replica", "localhost"]
    run = subprocess.run(
        [sys.executable, "-m", "shipyard.deploy.stack", "write", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "Error: replica 'localhost' is not HOST:PORT (e.g. 127.0.0.1:8001)."
    )
    with pytest.raises(InvalidInputError, match="SHIPYARD_DB"):
        replica_environment(db="sqlite:///x.db", artifacts="s3://b/p")
    with pytest.raises(InvalidInputError, match="not replicas"):
        write_stack_files(tmp_path, ["127.0.0.1:1"], listen="127.0.0.1:2", down=["127.0.0.1:3"])
    with pytest.raises(InvalidInputError, match="SHIPYARD_ARTIFACTS"):
        replica_environment(db="postgresql+psycopg://h/db", artifacts="/data")
