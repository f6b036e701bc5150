"""Soak test: a real ``shipyard serve`` under mixed traffic for half an hour.

Not part of ``make test``. In a private home under a temporary folder it
registers two iris versions, writes a batch file, and starts ``shipyard serve
iris`` (the real command, default workers, prediction log and monitor job on,
``--cache memory``) on 127.0.0.1. Then, for ``--minutes``, an async client
sends requests at a bounded rate (``--rate`` per second, at most
``--max-in-flight`` waiting), mixing:

- predictions: single records (from a small pool, so the cache answers some),
  lists of records, a record with a field the model does not take,
  ``/invocations`` as JSON and CSV, Open Inference Protocol ``infer``;
- ``/feedback`` for predictions answered earlier;
- bad input whose 4xx is expected: wrong types, a missing field, malformed
  JSON, a wrong content type, a wrong tensor shape, an unknown model, a
  feedback row out of range;
- the ``production`` alias moved between the two versions every
  ``--alias-every-minutes`` (Python API; the server hot-swaps);
- once, ``shipyard predict`` over ``--batch-rows`` rows with the prediction
  log on (in the first window by default, ``--batch-at-minute``: the warm-up
  absorbs it, and its rows stay in the monitor's one-hour window afterwards).

Every ``--window-minutes`` it prints one row: RSS (median of the samples and
peak), open files (sockets apart) and threads of the server's process tree (sampled every
``--sample-seconds``), requests, p50/p99 of answered predictions, every
non-2xx by cause, and what happened (alias moves, the batch job). After the
traffic the server gets SIGTERM (it drains and flushes its log) and every
answered prediction's request id is looked up in the prediction log. Last, one
MET/MISSED line per goal:

- RSS and open files flat after warm-up: every window after the first within
  10 % of the second;
- p99 of every window within 2x of the first window's;
- zero 5xx;
- every answered prediction in the prediction log, all its rows.

The server and the temporary folder are removed on exit, Ctrl-C included.

    .venv/bin/python bench/soak.py                      # 30 minutes, 5-minute windows
    .venv/bin/python bench/soak.py --minutes 6 --window-minutes 1 --batch-rows 500000
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
import httpx
import numpy as np
import psutil
from soak_traffic import FEATURES, MODEL, Mix, Request

MB = 2**20
FLAT = 0.10  # RSS and open files: within 10 % of the first window after warm-up
P99_FACTOR = 2.0  # p99: within 2x of the first window


# -- setup: models and the batch file -------------------------------------------------


def register_models(home: Path) -> None:
    """Two versions of iris (a logistic regression and a small forest); production -> 1."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from shipyard import Shipyard
    from shipyard.config import Settings
    from shipyard.quickstart import iris_frame

    X, y = iris_frame()
    client = Shipyard(Settings(home=home))
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)
    forest = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
    client.registry.log_model(linear, MODEL, sample=X, metrics={"accuracy": 0.97})
    client.registry.log_model(forest, MODEL, sample=X, metrics={"accuracy": 0.96})
    client.registry.set_alias(MODEL, "production", 1, reason="soak test start")
    client.close()


def iris_pool() -> np.ndarray:
    from shipyard.quickstart import iris_frame

    return iris_frame()[0].to_numpy(dtype=float)


def write_batch_file(path: Path, rows: int, pool: np.ndarray, chunk: int = 500_000) -> None:
    """``rows`` iris-like rows (pool rows plus noise) as Parquet, written in chunks."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(7)
    schema = pa.schema([(name, pa.float64()) for name in FEATURES])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            values = pool[rng.integers(len(pool), size=n)] + rng.normal(0, 0.1, (n, 4))
            writer.write_table(pa.table(dict(zip(FEATURES, values.T, strict=True)), schema=schema))


# -- the server -----------------------------------------------------------------------


def shipyard_command() -> list[str]:
    """The venv's ``shipyard`` script (the real entry point), else ``python -m``."""
    script = Path(sys.executable).with_name("shipyard")
    return [str(script)] if script.exists() else [sys.executable, "-m", "shipyard.cli"]


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(SHIPYARD_HOME=str(home), SHIPYARD_USER="soak")
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``shipyard serve iris`` in its own process group; output to a file."""

    def __init__(self, home: Path, work: Path, extra: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "server.log"
        self._log = self.log_path.open("w")
        cmd = [*shipyard_command(), "serve", MODEL, "--port", str(self.port), *extra]
        self.command = cmd
        self.proc = subprocess.Popen(
            cmd,
            env=child_env(home),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
        )
        self.exit_code: int | None = None

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shipyard serve exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/ready", timeout=5).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.url}/ready never answered 200")

    def tree(self) -> list[psutil.Process]:
        root = psutil.Process(self.proc.pid)
        return [root, *root.children(recursive=True)]

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (drain, flush the prediction log), then SIGKILL what is left."""
        if self.exit_code is not None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.exit_code = self.proc.wait(10)
        self._log.close()

    def output_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Sample:
    rss: int
    fds: int  # open descriptors that are not sockets: files, pipes, event fds
    sockets: int
    threads: int


def _descriptors(pid: int, work: str) -> Counter[str]:
    """What the descriptors of ``pid`` point at: a path (``work`` shortened to ``<tmp>``),
    ``pipe``, ``anon_inode:[eventfd]``, ``socket``..., counted."""
    found: Counter[str] = Counter()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(FileNotFoundError):  # closed meanwhile
            target = os.readlink(fd_dir / fd)
            kind = target.split(":", 1)[0]
            found[kind if kind in ("socket", "pipe") else target.replace(work, "<tmp>")] += 1
    return found


def sample_tree(server: Server) -> tuple[Sample, Counter[str]] | None:
    """RSS, descriptors and threads summed over the server's process tree, and what
    its descriptors point at. Sockets are counted apart from files: how many
    connections are open follows the load (the client opens more while answers are
    slow), files do not."""
    total = Sample(0, 0, 0, 0)
    targets: Counter[str] = Counter()
    try:
        procs = server.tree()
    except psutil.NoSuchProcess:
        return None
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, FileNotFoundError):
            total.rss += proc.memory_info().rss
            found = _descriptors(proc.pid, str(server.log_path.parent))
            total.threads += proc.num_threads()
            targets.update(found)
    total.sockets = targets.pop("socket", 0)
    total.fds = sum(targets.values())
    return total, targets


# -- traffic (the requests themselves are built in soak_traffic.py) -----------------


@dataclass
class Window:
    """What one window of the run saw."""

    index: int
    samples: list[Sample] = field(default_factory=list)
    requests: int = 0
    latencies: list[float] = field(default_factory=list)  # answered predictions, seconds
    non_2xx: Counter[str] = field(default_factory=Counter)  # "422 wrong type" -> count
    unexpected: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    versions: Counter[int] = field(default_factory=Counter)  # served version per /predict
    events: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(self.latencies, q)) * 1e3 if self.latencies else None

    def median(self, attr: str) -> float | None:
        values = [getattr(s, attr) for s in self.samples]
        return float(np.median(values)) if values else None

    def rss_mb(self) -> float | None:
        rss = self.median("rss")
        return None if rss is None else rss / MB

    def peak_rss(self) -> float | None:
        return max(s.rss for s in self.samples) / MB if self.samples else None


@dataclass
class Run:
    window_seconds: float
    start: float = 0.0
    stop_at: float = 0.0
    windows: list[Window] = field(default_factory=list)
    answered: dict[str, int] = field(default_factory=dict)  # request id -> rows
    batch: dict[str, Any] = field(default_factory=dict)
    log_metrics: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    # What the server's open files were at the first sample after the warm-up and
    # at the last one: where a change in their number comes from.
    files_after_warm_up: Counter[str] = field(default_factory=Counter)
    files_last: Counter[str] = field(default_factory=Counter)

    def window(self, at: float | None = None) -> Window:
        at = time.monotonic() if at is None else at
        at = min(at, self.stop_at - 1e-6)  # an answer after the end counts in the last window
        index = max(0, int((at - self.start) // self.window_seconds))
        while len(self.windows) <= index:
            self.windows.append(Window(len(self.windows)))
        return self.windows[index]


async def send(http: httpx.AsyncClient, mix: Mix, run: Run, request: Request) -> None:
    sent = time.monotonic()
    window = run.window(sent)
    window.requests += 1
    headers = {"content-type": request.content_type} if request.content_type else {}
    try:
        response = await http.request(
            request.method, request.path, content=request.body, headers=headers
        )
    except httpx.HTTPError as exc:  # no answer at all: counted with the non-2xx
        window.non_2xx[f"no answer ({type(exc).__name__}) {request.kind}"] += 1
        window.unexpected[f"no answer {request.kind}"] += 1
        return
    elapsed = time.monotonic() - sent
    status = response.status_code
    if status >= 300:
        window.non_2xx[f"{status} {request.kind}"] += 1
    if status >= 500:
        window.server_errors += 1
    if status != request.expect:
        window.unexpected[f"{status} {request.kind} (expected {request.expect})"] += 1
        return
    if request.rows and status == 200:
        request_id = response.headers["x-request-id"]
        run.answered[request_id] = request.rows
        mix.answered.append((request_id, request.rows))
        window.latencies.append(elapsed)
        if request.path == "/predict":
            window.versions[int(response.json()["version"])] += 1


async def traffic(http: httpx.AsyncClient, mix: Mix, run: Run, args: argparse.Namespace) -> None:
    """Requests at ``args.rate`` per second until the run ends, at most
    ``args.max_in_flight`` unanswered (beyond that the client waits: the rate falls)."""
    stop_at = run.stop_at
    interval = 1.0 / args.rate
    slots = anyio.Semaphore(args.max_in_flight)

    async def one(request: Request) -> None:
        try:
            await send(http, mix, run, request)
        finally:
            slots.release()

    async with anyio.create_task_group() as tg:
        due = time.monotonic()
        while due < stop_at:
            await anyio.sleep(max(0.0, due - time.monotonic()))
            await slots.acquire()
            if time.monotonic() >= stop_at:  # waited for a slot past the end
                slots.release()
                break
            tg.start_soon(one, mix.next())
            # After a stall, carry on at the rate instead of sending the backlog in a burst.
            due = max(due + interval, time.monotonic())


async def sampler(server: Server, run: Run, every: float) -> None:
    while True:
        sampled = await anyio.to_thread.run_sync(sample_tree, server)
        if sampled is not None and time.monotonic() < run.stop_at:
            sample, targets = sampled
            window = run.window()
            window.samples.append(sample)
            if window.index == 1 and not run.files_after_warm_up:
                run.files_after_warm_up = targets
            run.files_last = targets
        await anyio.sleep(every)


async def alias_mover(home: Path, run: Run, every: float) -> None:
    """Move ``production`` between versions 1 and 2 every ``every`` seconds."""
    from shipyard import Shipyard
    from shipyard.config import Settings

    client = Shipyard(Settings(home=home, user="soak"))
    version = 1
    try:
        while True:
            await anyio.sleep(every)
            version = 2 if version == 1 else 1
            move = functools.partial(
                client.registry.set_alias, MODEL, "production", version, reason="soak test"
            )
            await anyio.to_thread.run_sync(move)
            run.window().events.append(f"production -> {version}")
    finally:
        client.close()


async def batch_job(home: Path, work: Path, run: Run, rows: int, at: float) -> None:
    """``shipyard predict`` over the batch file, logging every row, once."""
    await anyio.sleep(at)
    cmd = [*shipyard_command(), "predict", MODEL, "--json"]
    cmd += ["--input", str(work / "batch.parquet"), "--output", str(work / "scores.parquet")]
    run.batch["command"] = " ".join(["shipyard", *cmd[len(shipyard_command()) :]])
    started = time.monotonic()
    run.window(started).events.append(f"batch job starts ({rows:,} rows)")
    done = await anyio.run_process(cmd, env=child_env(home), check=False, start_new_session=True)
    seconds = time.monotonic() - started
    run.batch.update(exit_code=done.returncode, seconds=seconds)
    if done.returncode == 0:
        run.batch["job_id"] = json.loads(done.stdout)["job_id"]
    else:
        run.batch["error"] = done.stderr.decode(errors="replace")[-2000:]
    run.window().events.append(f"batch job ends ({seconds:.0f} s, exit {done.returncode})")


async def scrape_log_metrics(http: httpx.AsyncClient) -> dict[str, float]:
    """The prediction log's counters from ``/metrics`` (summed over workers)."""
    text = (await http.get("/metrics")).text
    names = ("accepted", "written", "dropped", "write_errors")
    found = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        for name in names:
            if line.startswith(f"shipyard_prediction_log_{name}_total"):
                found[name] += float(line.rsplit(" ", 1)[1])
    return found


async def drive(server: Server, home: Path, work: Path, run: Run, args: argparse.Namespace) -> None:
    mix = Mix(iris_pool())
    # Idle connections are dropped before the server's keep-alive timeout (5 s) closes
    # them: reusing one just as the server closes it fails the request (a client-side
    # race every HTTP client must avoid, not the server's answer).
    limits = httpx.Limits(max_connections=args.max_in_flight, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
        run.start = time.monotonic()
        run.stop_at = run.start + args.minutes * 60
        async with anyio.create_task_group() as tg:
            tg.start_soon(sampler, server, run, args.sample_seconds)
            tg.start_soon(alias_mover, home, run, args.alias_every_minutes * 60)
            tg.start_soon(batch_job, home, work, run, args.batch_rows, args.batch_at_minute * 60)
            tg.start_soon(progress, run, args)
            await traffic(http, mix, run, args)
            tg.cancel_scope.cancel()
        run.log_metrics = await scrape_log_metrics(http)


async def progress(run: Run, args: argparse.Namespace) -> None:
    """One line per finished window while the run goes on."""
    shown = 0
    while True:
        await anyio.sleep(1)
        while shown < len(run.windows) - 1:
            print("window " + " | ".join(window_row(run, run.windows[shown], args)), flush=True)
            shown += 1


# -- the prediction log, read back ----------------------------------------------------


def logged_rows(home: Path) -> dict[str, int]:
    """Rows per request id in the prediction log of iris (every segment file)."""
    import duckdb

    files = sorted((home / "predictions" / MODEL).rglob("part-*.parquet"))
    if not files:
        return {}
    with duckdb.connect() as con:
        pairs = con.execute(
            "SELECT request_id, count(*) FROM read_parquet(?, union_by_name = true) "
            "GROUP BY request_id",
            [[str(f) for f in files]],
        ).fetchall()
    return {str(rid): int(n) for rid, n in pairs}


def check_log(run: Run, home: Path) -> dict[str, Any]:
    logged = logged_rows(home)
    missing = [rid for rid in run.answered if rid not in logged]
    short = [rid for rid, n in run.answered.items() if 0 < logged.get(rid, 0) < n]
    job = run.batch.get("job_id")
    return {
        "answered": len(run.answered),
        "answered_rows": sum(run.answered.values()),
        "missing": missing,
        "short": short,
        "batch_logged": logged.get(job, 0) if job else 0,
    }


# -- report ---------------------------------------------------------------------------

COLUMNS = (
    "window",
    "minutes",
    "RSS MB",
    "peak RSS MB",
    "open files",
    "sockets",
    "threads",
    "requests",
    "req/s",
    "p50 ms",
    "p99 ms",
    "non-2xx by cause",
    "events",
)


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def window_row(run: Run, w: Window, args: argparse.Namespace) -> list[str]:
    start = w.index * args.window_minutes
    end = min(start + args.window_minutes, args.minutes)
    causes = "; ".join(f"{cause}: {n}" for cause, n in sorted(w.non_2xx.items())) or "none"
    events = [*w.events]
    if len(w.versions) > 1 or (w.versions and w.index == 0):
        events.append("served " + ", ".join(f"v{v}" for v in sorted(w.versions)))
    return [
        str(w.index + 1) + (" (warm-up)" if w.index == 0 else ""),
        f"{start:g}-{end:g}",
        _fmt(w.rss_mb()),
        _fmt(w.peak_rss()),
        _fmt(w.median("fds")),
        _fmt(w.median("sockets")),
        _fmt(w.median("threads")),
        f"{w.requests:,}",
        f"{w.requests / ((end - start) * 60):.1f}",
        _fmt(w.percentile(50), ".1f"),
        _fmt(w.percentile(99), ".1f"),
        causes,
        "; ".join(events) or "-",
    ]


def flat(values: list[float | None]) -> tuple[bool | None, str]:
    """Every window after the warm-up within FLAT of the first of them."""
    after = [v for v in values[1:] if v is not None]
    if len(after) < 2:
        return None, "needs two windows after the warm-up"
    base = after[0]
    worst = max(after, key=lambda v: abs(v / base - 1))
    change = worst / base - 1
    return abs(change) <= FLAT, f"{base:.0f} -> at most {change:+.1%} (limit {FLAT:.0%})"


def goals(run: Run, log: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    ws = run.windows
    rss_ok, rss_text = flat([w.rss_mb() for w in ws])
    fds_ok, fds_text = flat([w.median("fds") for w in ws])
    if run.files_after_warm_up:
        gained = run.files_last - run.files_after_warm_up
        lost = run.files_after_warm_up - run.files_last
        changes = [f"+{n} {t}" for t, n in gained.items()] + [f"-{n} {t}" for t, n in lost.items()]
        fds_text += "; last sample against the first after warm-up: " + (
            ", ".join(changes) or "the same files"
        )
    p99s = [w.percentile(99) for w in ws]
    first = p99s[0] if p99s else None
    if first is None or len(p99s) < 2:
        p99_ok, p99_text = None, "needs two windows with answered predictions"
    else:
        worst = max(p for p in p99s if p is not None)
        p99_ok = worst <= P99_FACTOR * first
        p99_text = f"first {first:.1f} ms, worst {worst:.1f} ms ({worst / first:.2f}x, limit 2x)"
    errors = sum(w.server_errors for w in ws)
    missing, short = log["missing"], log["short"]
    log_ok = not missing and not short and log["answered"] > 0
    log_text = (
        f"{log['answered']:,} answered requests ({log['answered_rows']:,} rows): "
        f"{len(missing)} missing, {len(short)} with rows missing"
        + (f" (e.g. {(missing or short)[0]})" if missing or short else "")
    )
    unexpected = Counter[str]()
    for w in ws:
        unexpected.update(w.unexpected)
    batch_rows = log["batch_logged"]
    batch_ok = run.batch.get("exit_code") == 0 and batch_rows == run.batch.get("rows")
    return [
        ("RSS flat after warm-up (median per window)", rss_ok, rss_text),
        ("open files (not sockets) flat after warm-up", fds_ok, fds_text),
        ("p99 within 2x of the first window", p99_ok, p99_text),
        ("zero 5xx", errors == 0, f"{errors} answers 5xx"),
        ("every answered prediction in the log", log_ok, log_text),
        (
            "every answer as expected (2xx for good input, the right 4xx for bad)",
            not unexpected,
            "; ".join(f"{k}: {n}" for k, n in unexpected.most_common(5)) or "all",
        ),
        (
            "batch job logged every row",
            batch_ok,
            f"{batch_rows:,} of {run.batch.get('rows', 0):,} rows under "
            f"{run.batch.get('job_id', '(no job id)')}, exit {run.batch.get('exit_code')}"
            + (f", {run.batch['seconds']:.0f} s" if "seconds" in run.batch else ""),
        ),
    ]


def report(
    run: Run, log: dict[str, Any], server: Server, args: argparse.Namespace, argv: list[str]
) -> bool:
    import shipyard

    print(f"\n## Soak: {args.minutes:g} minutes, {args.rate:g} requests/s bounded")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f}, Python {platform.python_version()}, "
        f"shipyard {shipyard.__version__}"
    )
    print("command: .venv/bin/python bench/soak.py " + " ".join(argv))
    print("server: shipyard " + " ".join(server.command[len(shipyard_command()) :]))
    if "command" in run.batch:
        print("batch job: " + run.batch["command"])
    if run.interrupted:
        print("INTERRUPTED: the figures cover the part that ran.")
    print()
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for w in run.windows:
        print("| " + " | ".join(window_row(run, w, args)) + " |")
    m = run.log_metrics
    print(
        f"\nprediction log (server's /metrics before shutdown): {m.get('accepted', 0):,.0f} "
        f"rows accepted, {m.get('written', 0):,.0f} written, {m.get('dropped', 0):,.0f} "
        f"dropped, {m.get('write_errors', 0):,.0f} write errors; server exit code "
        f"{server.exit_code}"
    )
    print()
    met = True
    for name, ok, text in goals(run, log):
        verdict = "n/a" if ok is None else ("MET" if ok else "MISSED")
        met = met and ok is not False
        print(f"{verdict:6} {name}: {text}")
    return met


# -- main -----------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the traffic")
    parser.add_argument("--window-minutes", type=float, default=5.0, help="one table row each")
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second, at most")
    parser.add_argument("--max-in-flight", type=int, default=32, help="unanswered requests")
    parser.add_argument("--batch-rows", type=int, default=5_000_000)
    parser.add_argument(
        "--batch-at-minute", type=float, default=None, help="default: half the first window"
    )
    parser.add_argument("--alias-every-minutes", type=float, default=None, help="default: 2.5")
    parser.add_argument("--sample-seconds", type=float, default=2.0, help="process tree samples")
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        help="extra argument for shipyard serve (repeat), e.g. --serve-arg=--workers=2",
    )
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.window_minutes <= 0 or args.rate <= 0:
        parser.error("--minutes, --window-minutes and --rate must be positive")
    if args.batch_at_minute is None:
        args.batch_at_minute = args.window_minutes / 2
    if args.alias_every_minutes is None:
        args.alias_every_minutes = min(2.5, args.minutes / 3)
    return args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    work = Path(tempfile.mkdtemp(prefix="shipyard-soak-"))
    home = work / "home"
    server: Server | None = None
    run = Run(window_seconds=args.window_minutes * 60)
    run.batch["rows"] = args.batch_rows
    try:
        started = time.perf_counter()
        register_models(home)
        write_batch_file(work / "batch.parquet", args.batch_rows, iris_pool())
        print(f"set up in {time.perf_counter() - started:.0f} s: {work}", flush=True)
        extra = ["--cache", "memory", "--log-level", "warning", *args.serve_arg]
        server = Server(home, work, extra)
        server.wait_ready()
        print(f"serving at {server.url} (pid {server.proc.pid})", flush=True)
        try:
            anyio.run(drive, server, home, work, run, args)
        except KeyboardInterrupt:
            run.interrupted = True
            print("\ninterrupted: stopping the server", flush=True)
        server.stop()  # drains and flushes the prediction log
        if server.exit_code not in (0, None):
            print(f"shipyard serve exited with {server.exit_code}:\n{server.output_tail()}")
        if not run.windows:
            return 1
        met = report(run, check_log(run, home), server, args, argv)
        return 0 if met and not run.interrupted else 1
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
        return 1
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
