"""Serving a feature-backed model over real HTTP: keys and request-time fields in, features
fetched from the online store (SQLite, or Redis next to PostgreSQL), the same on-demand
function as in training, the features logged, a clear 422 / 503 when they cannot be had."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from live_server import LiveServer, free_port
from shipyard._client import Shipyard
from shipyard.config import Settings
from shipyard.serving import ServeOptions, create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))
from driver_data import driver_stats, entity_rows, write_definitions
from driver_fx import ON_DEMAND_YAML

REFS = [
    "driver_stats:conv_rate",
    "driver_stats:acc_rate",
    "driver_stats:avg_daily_trips",
    "trip_features:conv_per_km",
]
INPUTS = ["conv_rate", "acc_rate", "avg_daily_trips", "conv_per_km"]


class Trained:
    def __init__(self, client: Shipyard, model: LogisticRegression, stats: pd.DataFrame) -> None:
        self.client = client
        self.model = model
        self.stats = stats


@pytest.fixture
def trained(feature_settings: Settings, tmp_path: Path) -> Iterator[Trained]:
    client = Shipyard(feature_settings)
    # Hourly rows up to the last full hour: fresh within the 1-day TTL whenever the test runs.
    start = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=47)).floor("h")
    stats = driver_stats(n_drivers=6, hours=48, start=str(start))
    path = write_definitions(tmp_path / "repo", stats, ttl="1d")
    path.write_text(path.read_text() + ON_DEMAND_YAML)
    client.features.apply(path)
    entities = entity_rows(stats, 300)
    entities = entities[entities["driver_id"] > 1000]  # known drivers only
    entities["trip_distance"] = np.random.default_rng(0).uniform(1, 20, len(entities))
    with client.tracker.start_run("eta") as run:
        train = client.features.training_set(entities, REFS).dropna()
        X = train[INPUTS].astype("float64")
        model = LogisticRegression().fit(X, train["label"])
        version = client.registry.log_model(
            model,
            "eta",
            sample=X.head(40),
            run_id=run.id,
            features=run.features,
            optimize=False,
        )
        client.feature_store.add_consumers("eta", version.version, run.features["views"])
    client.features.materialize()
    yield Trained(client, model, stats)
    client.close()


@pytest.fixture
def served(trained: Trained) -> Iterator[LiveServer]:
    server = LiveServer(create_app(trained.client, "eta:1", options=ServeOptions())).start()
    yield server
    server.stop()


def test_keys_and_request_fields_in_prediction_out_as_offline(
    trained: Trained, served: LiveServer
) -> None:
    rows = [
        {"driver_id": 1001, "trip_distance": 3.2},
        {"driver_id": 1004, "trip_distance": 12.5},
    ]
    with served.client() as http:
        answer = http.post("/predict", json=rows)
    assert answer.status_code == 200, answer.text
    # The same features built offline for "now" give the same prediction: the on-demand
    # function and the values are identical offline and online.
    now = pd.Timestamp.now(tz="UTC")
    offline = trained.client.features.training_set(
        pd.DataFrame(rows).assign(event_timestamp=now), REFS
    )
    online = trained.client.features.online(REFS, rows)
    for column in INPUTS:
        assert online[column].astype("float64").tolist() == pytest.approx(
            offline[column].astype("float64").tolist(), rel=0, abs=0
        )
    expected = trained.model.predict(offline[INPUTS].astype("float64"))
    assert answer.json()["predictions"] == expected.tolist()


def test_the_prediction_log_keeps_the_feature_values_used(
    trained: Trained, served: LiveServer
) -> None:
    with served.client() as http:
        assert http.post("/predict", json={"driver_id": 1002, "trip_distance": 4.0}).is_success
    log = trained.client.prediction_log
    log.flush()
    logged = log.read_inputs("eta", "1h")
    online = trained.client.features.online(REFS, [{"driver_id": 1002, "trip_distance": 4.0}])
    assert logged["driver_id"].tolist() == [1002]
    for column in INPUTS:
        assert logged[column].iloc[0] == pytest.approx(float(online[column].iloc[0]))


def test_openapi_shows_request_fields_not_fetched_features(served: LiveServer) -> None:
    with served.client() as http:
        spec = http.get("/openapi.json").json()
    record = spec["components"]["schemas"]["EtaRecord"]
    assert set(record["properties"]) == {"driver_id", "trip_distance"}
    assert record["properties"]["driver_id"]["type"] == "integer"


def test_unknown_or_missing_key_is_a_422_naming_it(served: LiveServer) -> None:
    with served.client() as http:
        unknown = http.post("/predict", json={"driver_id": 77, "trip_distance": 1.0})
        missing = http.post("/predict", json={"trip_distance": 1.0})
    assert unknown.status_code == 422
    assert "No online features for driver_id=77 in view 'driver_stats'" in unknown.text
    assert missing.status_code == 422
    assert "missing entity key 'driver_id'" in missing.text
    with served.client() as http:
        metrics = http.get("/metrics").text
    assert 'shipyard_feature_lookups_total{outcome="missing",view="driver_stats"} 1.0' in metrics


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ('"1001"', "str '1001'"),  # as the signature: no numeric strings for an integer
        ("[1001]", "list [1001]"),
        ("true", "bool True"),
        ("1001.5", "float 1001.5"),
        ('"abc"', "str 'abc'"),
        ("1e400", "float inf"),  # JSON's overflow: Python reads it as infinity
        ("9223372036854775808", "int 9223372036854775808"),  # 2^63: not an int64
    ],
)
def test_an_entity_key_of_the_wrong_type_is_a_422_naming_it(
    served: LiveServer, key: str, shown: str
) -> None:
    """An int64 key given text, a list, a boolean, a fraction or an overflow is refused by
    name and type, not looked up and reported as "never materialized"."""
    body = f'{{"driver_id": {key}, "trip_distance": 3.0}}'
    with served.client() as http:
        answer = http.post("/predict", content=body, headers={"content-type": "application/json"})
        batch = http.post("/predict", json=[{"driver_id": 1001, "trip_distance": 1.0}, {}])
    assert answer.status_code == 422, answer.text
    detail = answer.json()
    assert "entity key 'driver_id' must be int64" in answer.text, detail
    assert f"got {shown}" in answer.text, detail
    assert "never materialized" not in answer.text
    assert batch.status_code == 422 and "record 1: missing entity key" in batch.text


def test_an_integral_float_key_is_the_integer_key(served: LiveServer) -> None:
    """1001.0 (a JSON client's number) is the int64 key 1001, as a signature reads it."""
    with served.client() as http:
        as_float = http.post("/predict", json={"driver_id": 1001.0, "trip_distance": 3.0})
        as_int = http.post("/predict", json={"driver_id": 1001, "trip_distance": 3.0})
    assert as_float.status_code == 200, as_float.text
    assert as_int.status_code == 200
    assert as_float.json()["prediction"] == as_int.json()["prediction"]


def _loaded_but_not_ready(server: LiveServer, timeout: float = 60.0) -> httpx.Response:
    """Poll ``/ready`` until the model is loaded (its answer is no longer "not loaded yet")
    and return that answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(server.url + "/ready", timeout=10)
        if answer.status_code == 200 or answer.json().get("type") != "ModelNotReadyError":
            return answer
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.05)


def _gauges(server: LiveServer) -> dict[str, float]:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(("shipyard_model_ready", "shipyard_online_store_up"))
    }


def test_an_unreachable_online_store_is_a_503_never_a_guess(trained: Trained) -> None:
    """Nothing listens on port 1: every prediction is a 503, and so is /ready (a balancer
    must not send this replica traffic), naming the store without its credentials."""
    url = "redis://reader:s3cret@127.0.0.1:1/0"
    settings = trained.client.settings.model_copy(update={"online_store": url})
    down = Shipyard(settings)
    server = LiveServer(create_app(down, "eta:1", options=ServeOptions())).start(ready=False)
    try:
        ready = _loaded_but_not_ready(server)
        with server.client() as http:
            answer = http.post("/predict", json={"driver_id": 1001, "trip_distance": 2.0})
            v2_ready = http.get("/v2/health/ready")
        assert answer.status_code == 503
        assert "online store" in answer.text and "cannot be reached" in answer.text
        assert ".." not in answer.text, answer.text
        assert ready.status_code == 503, ready.text
        body = ready.json()
        assert body["type"] == "OnlineStoreNotReadyError"
        assert body["online_store"] == "redis://127.0.0.1:1/0#shipyard"
        assert "eta:1" in body["error"] and "redis://127.0.0.1:1/0" in body["error"]
        assert "cannot be reached" in body["error"] and ".." not in body["error"]
        assert ready.headers["retry-after"] == "1"
        assert v2_ready.status_code == 503 and "online store" in v2_ready.text
        for text in (ready.text, v2_ready.text, answer.text):
            assert "s3cret" not in text and "reader" not in text
        gauges = _gauges(server)
        assert gauges["shipyard_model_ready"] == 0.0
        assert gauges['shipyard_online_store_up{store="redis://127.0.0.1:1/0#shipyard"}'] == 0.0
    finally:
        server.stop()
        down.close()


def test_a_model_without_features_is_ready_whatever_the_online_store_does(
    trained: Trained,
) -> None:
    """A model that fetches no features never touches the online store: /ready is 200 on a
    server whose store cannot be reached, and no ping is ever sent."""
    from sklearn.linear_model import LinearRegression

    X = pd.DataFrame({"x": np.arange(20.0)})
    trained.client.registry.log_model(
        LinearRegression().fit(X, X["x"]), "plain", sample=X, optimize=False
    )
    settings = trained.client.settings.model_copy(update={"online_store": "redis://127.0.0.1:1/0"})
    down = Shipyard(settings)
    app = create_app(down, "plain:1", options=ServeOptions())
    server = LiveServer(app).start()
    try:
        with server.client() as http:
            readies = [http.get("/ready") for _ in range(5)]
            answer = http.post("/predict", json={"x": 3.0})
        assert [r.status_code for r in readies] == [200] * 5, readies[0].text
        assert answer.status_code == 200, answer.text
        assert app.state.readiness.online.pings == 0
        gauges = _gauges(server)
        assert gauges["shipyard_model_ready"] == 1.0
        assert not any(k.startswith("shipyard_online_store_up{") for k in gauges)
    finally:
        server.stop()
        down.close()


class TcpProxy:
    """A TCP proxy on 127.0.0.1 to ``upstream``, to take a store away and give it back
    without touching the shared server: :meth:`stop` closes the port and every
    connection through it, :meth:`start` listens on the same port again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        self._stopped.clear()
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR on POSIX
        listener.settimeout(0.05)
        self._keep(listener)
        self._spawn(self._accept, listener)
        return self

    def stop(self) -> None:
        self._stopped.set()
        for thread in self._threads:
            thread.join(5)
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
            self._sockets.clear()
        self._threads.clear()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            for sock in (client, server):
                sock.settimeout(0.05)
                self._keep(sock)
            self._spawn(self._pump, client, server)
            self._spawn(self._pump, server, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            with contextlib.suppress(OSError):
                sink.sendall(data)


def _wait_status(server: LiveServer, status: int, timeout: float = 15.0) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(server.url + "/ready", timeout=10)
        if answer.status_code == status:
            return answer
        assert time.monotonic() < deadline, f"/ready stayed {answer.status_code}: {answer.text}"
        time.sleep(0.05)


@pytest.mark.parametrize("feature_settings", ["postgres+redis"], indirect=True)
def test_ready_follows_an_online_store_that_goes_down_and_comes_back(
    trained: Trained,
) -> None:
    """Redis reached through a proxy this test stops and starts again (the shared Redis is
    never touched): /ready is 200, then 503 naming the store within about a second of it
    going away (predictions 503 too), then 200 again once it is back, and predictions are
    answered again. Probes in between cost at most one ping a second."""
    store = urlsplit(trained.client.settings.online_store or "")
    assert store.hostname and store.port, store
    proxy = TcpProxy((store.hostname, store.port)).start()
    proxied = urlunsplit(store._replace(netloc=f"127.0.0.1:{proxy.port}"))
    client = Shipyard(trained.client.settings.model_copy(update={"online_store": proxied}))
    app = create_app(client, "eta:1", options=ServeOptions())
    server = LiveServer(app).start()
    row = {"driver_id": 1001, "trip_distance": 2.0}
    target = f"redis://127.0.0.1:{proxy.port}/0#{parse_qs(store.query)['key_prefix'][0]}"
    try:
        with server.client() as http:
            assert http.post("/predict", json=row).status_code == 200
            assert http.get("/ready").status_code == 200

            proxy.stop()
            stopped = time.monotonic()
            down = _wait_status(server, 503)
            assert time.monotonic() - stopped < 5.0
            assert down.json()["online_store"] == target, down.text
            assert "cannot be reached" in down.json()["error"]
            refused = http.post("/predict", json=row)
            assert refused.status_code == 503, refused.text
            pings, started = app.state.readiness.online.pings, time.monotonic()
            probes = [http.get("/ready").status_code for _ in range(40)]
            seconds = time.monotonic() - started
            assert probes == [503] * 40
            assert app.state.readiness.online.pings - pings <= seconds / 1.0 + 2
            gauges = _gauges(server)
            assert gauges[f'shipyard_online_store_up{{store="{target}"}}'] == 0.0
            assert gauges["shipyard_model_ready"] == 0.0

            proxy.start()
            _wait_status(server, 200)
            answer = http.post("/predict", json=row)
            assert answer.status_code == 200, answer.text
            gauges = _gauges(server)
            assert gauges[f'shipyard_online_store_up{{store="{target}"}}'] == 1.0
            assert gauges["shipyard_model_ready"] == 1.0
    finally:
        server.stop()
        client.close()
        proxy.stop()


def _cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(settings.home))
    if settings.db:
        monkeypatch.setenv("SHIPYARD_DB", settings.db)
    if settings.online_store:
        monkeypatch.setenv("SHIPYARD_ONLINE_STORE", settings.online_store)


def test_features_skew_through_the_cli(
    trained: Trained, served: LiveServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from shipyard.cli.main import app

    rng = np.random.default_rng(1)
    rows = [
        {"driver_id": int(d), "trip_distance": float(t)}
        for d, t in zip(rng.integers(1001, 1007, 40), rng.uniform(1, 9, 40), strict=True)
    ]
    with served.client() as http:
        for i in range(0, 40, 8):
            assert http.post("/predict", json=rows[i : i + 8]).is_success
    trained.client.prediction_log.flush()
    _cli_env(trained.client.settings, monkeypatch)
    runner = CliRunner()
    report = tmp_path / "skew.html"
    same = runner.invoke(
        app, ["features", "skew", "eta:1", "--window", "1h", "--report", str(report)]
    )
    assert same.exit_code == 0, same.output
    assert "No skew over 40 served rows of eta:1" in same.output
    assert "conv_per_km" in same.output and "1.0000" in same.output
    assert "<html" in report.read_text().lower()

    # The source changes after materialization: served values no longer match offline ones.
    source = Path(trained.client.features.catalog().view("driver_stats").source.path)
    changed = pd.read_parquet(source)
    changed["conv_rate"] = (changed["conv_rate"] * 0.5).astype("float32")
    changed.to_parquet(source, index=False)
    skewed = runner.invoke(app, ["features", "skew", "eta:1", "--window", "1h"])
    assert skewed.exit_code == 1, skewed.output
    assert "Skew detected" in skewed.output


def test_skew_of_a_model_without_features_is_refused(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LinearRegression
    from typer.testing import CliRunner

    from shipyard.cli.main import app

    X = pd.DataFrame({"x": np.arange(20.0)})
    trained.client.registry.log_model(
        LinearRegression().fit(X, X["x"]), "plain", sample=X, optimize=False
    )
    _cli_env(trained.client.settings, monkeypatch)
    out = CliRunner().invoke(app, ["features", "skew", "plain:1"])
    assert out.exit_code == 1
    assert "was not trained on feature-store features" in out.output


@pytest.mark.parametrize("distance", ["x", "3.5", True, [1.0]])
def test_a_request_field_of_the_wrong_type_is_a_422_naming_it(
    served: LiveServer, distance: object
) -> None:
    """A declared float64 request field given text, a boolean or a list: refused by name
    before the on-demand function runs (it once raised inside it: a 500)."""
    with served.client() as http:
        answer = http.post("/predict", json={"driver_id": 1001, "trip_distance": distance})
        good = http.post("/predict", json={"driver_id": 1001, "trip_distance": 3})
    assert answer.status_code == 422, answer.text
    assert "request field 'trip_distance' must be float64" in answer.text
    assert good.status_code == 200, good.text


def test_an_optimized_version_keeps_its_features_and_serves_by_id(
    trained: Trained, tmp_path: Path
) -> None:
    """`shipyard optimize` of a feature-backed model: the new version still fetches its
    features by entity id, and the breaking-change guard knows it uses the views."""
    from typer.testing import CliRunner

    from live_server import subprocess_env
    from shipyard.cli.main import app

    env = subprocess_env(trained.client.settings, importable=Path(__file__).parent)
    if trained.client.settings.online_store:
        env["SHIPYARD_ONLINE_STORE"] = trained.client.settings.online_store
    done = CliRunner().invoke(
        app,
        ["optimize", "eta:1", "--distill", "sklearn.tree:DecisionTreeClassifier?max_depth=3"],
        env=env,
    )
    assert "eta:2: registered" in done.output, done.output
    version = trained.client.registry.resolve("eta:2")
    assert version.run_id == trained.client.registry.resolve("eta:1").run_id
    assert trained.client.registry.manifest(version).features is not None
    users = {
        (c.model, c.model_version) for c in trained.client.feature_store.consumers("driver_stats")
    }
    assert ("eta", 2) in users
    server = LiveServer(create_app(trained.client, "eta:2", options=ServeOptions())).start()
    try:
        with server.client() as http:
            answer = http.post("/predict", json={"driver_id": 1001, "trip_distance": 3.2})
    finally:
        server.stop()
    assert answer.status_code == 200, answer.text


def _read_sizes(metrics: str) -> tuple[float, float]:
    """(reads, reads that served one request) from shipyard_feature_read_requests."""
    total = one = 0.0
    for line in metrics.splitlines():
        if line.startswith("shipyard_feature_read_requests_count"):
            total = float(line.split()[-1])
        if line.startswith('shipyard_feature_read_requests_bucket{le="1.0"}'):
            one = float(line.split()[-1])
    return total, one


def test_concurrent_requests_share_a_read_and_each_gets_its_own_answer(
    trained: Trained, served: LiveServer
) -> None:
    """Requests arriving together share one online read per view (the histogram shows a
    read that served several); known and unknown keys mixed, each request gets its own
    prediction or its own 422, and the log keeps each request's own keys and values."""
    import asyncio

    import httpx

    rng = np.random.default_rng(7)
    bodies: list[object] = []
    for i in range(48):
        driver = int(rng.choice([1001, 1002, 1003, 1004, 1005, 1006, 77, 88]))
        distance = float(rng.uniform(1, 20))
        if i % 6 == 5:  # a list of two records, the second one known
            bodies.append([{"driver_id": driver, "trip_distance": distance},
                           {"driver_id": 1003, "trip_distance": 2.5}])  # fmt: skip
        else:
            bodies.append({"driver_id": driver, "trip_distance": distance})

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
            return await asyncio.gather(*(http.post("/predict", json=b) for b in bodies))

    shared = False
    for _ in range(10):  # until some of them landed in one read (nearly always the first)
        answers = asyncio.run(send_all())
        for body, answer in zip(bodies, answers, strict=True):
            rows = body if isinstance(body, list) else [body]
            unknown = [r["driver_id"] for r in rows if r["driver_id"] in (77, 88)]
            if unknown:
                assert answer.status_code == 422, answer.text
                assert (
                    f"No online features for driver_id={unknown[0]} in view 'driver_stats'"
                    in answer.text
                )
                continue
            assert answer.status_code == 200, answer.text
            online = trained.client.features.online(REFS, rows)
            expected = trained.model.predict(online[INPUTS].astype("float64")).tolist()
            got = answer.json()
            assert (got["predictions"] if isinstance(body, list) else [got["prediction"]]) == (
                expected
            )
        with served.client() as http:
            total, one = _read_sizes(http.get("/metrics").text)
        if total > one:
            shared = True
            break
    assert shared, "no online read served more than one request"

    log = trained.client.prediction_log
    log.flush()
    logged = log.read("eta", "1h")
    sent = {a.json()["request_id"]: b for a, b in zip(answers, bodies, strict=True) if a.is_success}
    mine = logged[logged["request_id"].isin(sent)].sort_values(["request_id", "row"])
    assert len(mine) == sum(len(b) if isinstance(b, list) else 1 for b in sent.values())
    for request_id, rows in mine.groupby("request_id"):
        body = sent[request_id]
        want = body if isinstance(body, list) else [body]
        assert rows["in_driver_id"].tolist() == [r["driver_id"] for r in want]
        assert rows["in_trip_distance"].tolist() == [r["trip_distance"] for r in want]
        online = trained.client.features.online(REFS, want)
        assert rows["in_conv_per_km"].tolist() == pytest.approx(
            online["conv_per_km"].astype("float64").tolist(), rel=0, abs=0
        )


def test_a_model_of_stored_features_serves_by_id_and_logs_what_it_saw(
    trained: Trained,
) -> None:
    """No on-demand feature: the request's rows are joined to plain records and validated
    into the model's own matrix (an ONNX graph, as `log_model` optimizes by default), no
    frame per request; the log keeps each row's key in front of the feature values."""
    client = trained.client
    refs, inputs = REFS[:3], INPUTS[:3]
    entities = entity_rows(trained.stats, 200)
    entities = entities[entities["driver_id"] > 1000]
    with client.tracker.start_run("eta-stored") as run:
        train = client.features.training_set(entities, refs).dropna()
        X = train[inputs].astype("float64")
        model = LogisticRegression().fit(X, train["label"])
        client.registry.log_model(
            model, "eta-stored", sample=X.head(40), run_id=run.id, features=run.features
        )
    server = LiveServer(create_app(client, "eta-stored:1", options=ServeOptions())).start()
    bodies: list[object] = [{"driver_id": 1002}, [{"driver_id": 1001}, {"driver_id": 1005}]]
    try:
        with server.client() as http:
            answers = [http.post("/predict", json=b) for b in bodies]
            unknown = http.post("/predict", json=[{"driver_id": 1003}, {"driver_id": 77}])
    finally:
        server.stop()
    assert unknown.status_code == 422
    assert "No online features for driver_id=77 in view 'driver_stats'" in unknown.text
    for body, answer in zip(bodies, answers, strict=True):
        assert answer.status_code == 200, answer.text
        rows = body if isinstance(body, list) else [body]
        online = client.features.online(refs, rows)
        expected = model.predict(online[inputs].astype("float64")).tolist()
        got = answer.json()
        assert (got["predictions"] if isinstance(body, list) else [got["prediction"]]) == expected
    log = client.prediction_log
    log.flush()
    logged = log.read("eta-stored", "1h").sort_values(["timestamp", "row"])
    assert [c for c in logged.columns if c.startswith("in_")] == [
        "in_driver_id",
        *(f"in_{c}" for c in inputs),
    ]
    assert logged["in_driver_id"].tolist() == [1002, 1001, 1005]
    online = client.features.online(refs, [{"driver_id": d} for d in (1002, 1001, 1005)])
    for column in inputs:
        assert logged[f"in_{column}"].tolist() == pytest.approx(
            online[column].astype("float64").tolist(), rel=0, abs=0
        )


def test_batch_predict_of_a_feature_backed_model_says_to_build_the_features(
    trained: Trained, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`shipyard predict` scores the columns it is given: a table of keys alone is refused
    with the way to build the feature columns; the training set built that way scores."""
    from typer.testing import CliRunner

    from shipyard.cli.main import app

    _cli_env(trained.client.settings, monkeypatch)
    runner = CliRunner()
    keys = pd.DataFrame(
        {
            "driver_id": [1001, 1002],
            "trip_distance": [3.0, 5.0],
            "event_timestamp": [pd.Timestamp.now(tz="UTC")] * 2,
        }
    )
    keys.to_parquet(tmp_path / "keys.parquet", index=False)
    refused = runner.invoke(
        app,
        ["predict", "eta:1", "-i", str(tmp_path / "keys.parquet"), "-o", str(tmp_path / "p.csv")],
    )
    assert refused.exit_code == 1, refused.output
    text = " ".join(refused.output.split())
    assert "has no columns 'conv_rate'" in text
    assert "eta:1 is feature-backed" in text and "shipyard features training-set" in text
    assert "driver_stats:conv_rate" in text and "trip_distance" in text

    built = runner.invoke(
        app,
        [
            "features",
            "training-set",
            "--entities",
            str(tmp_path / "keys.parquet"),
            "--features",
            ",".join(REFS),
            "--output",
            str(tmp_path / "train.parquet"),
        ],
    )
    assert built.exit_code == 0, built.output
    scored = runner.invoke(
        app,
        ["predict", "eta:1", "-i", str(tmp_path / "train.parquet"), "-o", str(tmp_path / "p.csv")],
    )
    assert scored.exit_code == 0, scored.output
    assert len(pd.read_csv(tmp_path / "p.csv")) == 2


def test_v2_metadata_and_infer_take_the_keys_and_request_fields(
    trained: Trained, served: LiveServer
) -> None:
    """/v2 lists what a request carries (the key and the request-time field, not the
    fetched features) and answers tensors of them as /predict answers the same rows."""
    with served.client() as http:
        meta = http.get("/v2/models/eta").json()
        rows = [
            {"driver_id": 1001, "trip_distance": 3.2},
            {"driver_id": 1004, "trip_distance": 12.5},
        ]
        native = http.post("/predict", json=rows).json()["predictions"]
        columns = http.post(
            "/v2/models/eta/infer",
            json={
                "inputs": [
                    {"name": "driver_id", "shape": [2], "datatype": "INT64", "data": [1001, 1004]},
                    {
                        "name": "trip_distance",
                        "shape": [2],
                        "datatype": "FP64",
                        "data": [3.2, 12.5],
                    },
                ]
            },
        )
        unknown = http.post(
            "/v2/models/eta/infer",
            json={
                "inputs": [
                    {"name": "driver_id", "shape": [1], "datatype": "INT64", "data": [77]},
                    {"name": "trip_distance", "shape": [1], "datatype": "FP64", "data": [1.0]},
                ]
            },
        )
    assert {(i["name"], i["datatype"]) for i in meta["inputs"]} == {
        ("driver_id", "INT64"),
        ("trip_distance", "FP64"),
    }
    assert columns.status_code == 200, columns.text
    (predict,) = [o for o in columns.json()["outputs"] if o["name"] == "predict"]
    assert predict["data"] == native
    assert unknown.status_code == 400, unknown.text  # V2 answers bad input with 400
    assert "No online features for driver_id=77" in unknown.text


def test_v2_with_tritons_own_client(trained: Trained, served: LiveServer) -> None:
    """Triton's HTTP client (binary tensors by default) against a feature-backed model."""
    sys.path.insert(0, str(Path(__file__).parent / "protocols"))
    from test_v2_triton_client import REQUIREMENTS, drive

    from peers import peer_venv_python

    python = peer_venv_python("tritonclient", REQUIREMENTS)
    cases = [
        {
            "model": "eta",
            "inputs": [
                {"name": "driver_id", "datatype": "INT64", "values": [1001, 1004], "binary": True},
                {
                    "name": "trip_distance",
                    "datatype": "FP64",
                    "values": [3.2, 12.5],
                    "binary": True,
                },
            ],
            "outputs": None,
        }
    ]
    report = drive(python, served.url, cases)
    assert {i["name"] for i in report["model_metadata"]["inputs"]} == {"driver_id", "trip_distance"}
    (case,) = report["cases"]
    assert "error" not in case, case
    with served.client() as http:
        native = http.post(
            "/predict",
            json=[
                {"driver_id": 1001, "trip_distance": 3.2},
                {"driver_id": 1004, "trip_distance": 12.5},
            ],
        ).json()["predictions"]
    assert case["arrays"]["predict"] == native
