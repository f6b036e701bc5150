"""The shared stack on one machine: replicas of ``shipyard serve`` behind nginx.

Many replicas share one PostgreSQL database (registry, deployments, monitor
leases), one S3 bucket (artifacts and the prediction log), and one Redis (the
prediction cache). This module writes the two configuration files the stack
needs besides Shipyard's own settings, and says how each replica is started:

- :func:`nginx_conf`: nginx as the load balancer, in the foreground
  (``daemon off``) with its pid, logs and temp folders under one prefix
  folder, so it runs as an ordinary child process of whoever started it.
  Its access log names the replica (``$upstream_addr``) and the variant that
  answered (the replica's ``X-Shipyard-Variant``), so a traffic split can be
  measured where the traffic is; a replica that refuses connections is
  skipped (``proxy_next_upstream error timeout``) but a request already sent
  to one is never sent again (no ``non_idempotent``): a prediction is never
  made and logged twice.
- :func:`prometheus_config`: Prometheus scraping every replica's ``/metrics``,
  with the alert rules shipped in ``deploy/prometheus``.
- :func:`replica_command` / :func:`replica_environment`: one replica.

``deploy/stack/run-local.sh`` and the end-to-end test start the stack from
these same pieces; ``python -m shipyard.deploy.stack write ...`` writes both
files for the script.

>>> print(nginx_conf(["127.0.0.1:8001"], listen="127.0.0.1:8080", prefix=Path("/s"))[:35])
# Written by shipyard.deploy.stack.
"""

from __future__ import annotations

import argparse
import getpass
import math
import os
import re
import shutil
import signal
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

import yaml

from shipyard.errors import InvalidInputError

#: The folders nginx needs under its prefix (its own temp folders: never the system's).
NGINX_TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
#: Fields of one access-log line, in order (see :func:`parse_access_log`).
ACCESS_LOG_FIELDS = ("time", "status", "replica", "replica_status", "variant", "request_id")

_ADDRESS = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")


def _check_address(address: str, what: str) -> str:
    if not _ADDRESS.fullmatch(address):
        raise InvalidInputError(f"{what} {address!r} is not HOST:PORT (e.g. 127.0.0.1:8001).")
    return address


def _idle_ms(replica_keep_alive: float | None) -> int:
    """Milliseconds nginx keeps an idle replica connection: four fifths of what the
    replica does (nginx's own default, 60 s, outlived the replicas' 5 s)."""
    if replica_keep_alive is None:
        from shipyard.serving.connections import DEFAULT_KEEP_ALIVE_TIMEOUT

        replica_keep_alive = DEFAULT_KEEP_ALIVE_TIMEOUT
    return max(1, math.floor(replica_keep_alive * 800))


def nginx_conf(
    replicas: Sequence[str],
    *,
    listen: str,
    prefix: Path,
    max_body_bytes: int = 1024 * 1024,
    fail_timeout: float = 5.0,
    down: Collection[str] = (),
    replica_keep_alive: float | None = None,
) -> str:
    """nginx.conf balancing ``replicas`` (HOST:PORT each) behind ``listen`` (HOST:PORT).

    Everything nginx writes (pid, logs, temp files) goes under ``prefix``; create
    those folders with :func:`prepare_nginx_prefix`. A replica that fails a
    connection is left out for ``fail_timeout`` seconds, then tried again.

    Replicas in ``down`` get no traffic: a replica being (re)started answers 503
    until its model is loaded, and nginx (without active health checks) would
    send it requests. To restart one: write the file with it in ``down``,
    :func:`reload_nginx`, start it, wait for its ``/ready``, write the file
    without it in ``down``, reload again (a reload drops no request).

    nginx keeps idle connections to the replicas for less time than a replica keeps
    them (``replica_keep_alive``, ``shipyard serve --keep-alive-timeout``, its default
    when None): otherwise
    a replica could close one just as nginx sends a prediction on it, and nginx,
    which never sends a POST twice, answers that request 502.
    """
    if not replicas:
        raise InvalidInputError("The stack needs at least one replica (HOST:PORT).")
    _check_address(listen, "listen address")
    prefix = Path(prefix).resolve()
    unknown = set(down) - set(replicas)
    if unknown:
        raise InvalidInputError(f"down names {sorted(unknown)}, which are not replicas.")
    servers = "\n".join(
        f"        server {_check_address(r, 'replica')} max_fails=1 "
        f"fail_timeout={fail_timeout:g}s{' down' if r in down else ''};"
        for r in replicas
    )
    temp = "\n".join(f"    {name}_temp_path {prefix / 'temp' / name};" for name in NGINX_TEMP_DIRS)
    # The master opens the logs; workers write temp files, so they run as this user.
    user = f"user {getpass.getuser()};\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    proxy = """            proxy_pass http://shipyard_replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            # A refused connection goes to the next replica; a request already sent
            # is not sent again (POST /predict is not idempotent: it is logged).
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
            add_header X-Shipyard-Replica $upstream_addr always;"""
    return f"""# Written by shipyard.deploy.stack. Run: nginx -p {prefix} -c {prefix / "nginx.conf"}
daemon off;
{user}worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;

events {{
    worker_connections 1024;
}}

http {{
{temp}
    # One line per request: which replica answered, with which variant.
    log_format shipyard '$msec $status $upstream_addr $upstream_status '
                        '$upstream_http_x_shipyard_variant $upstream_http_x_request_id';
    access_log {prefix / "access.log"} shipyard;

    upstream shipyard_replicas {{
{servers}
        keepalive 32;
        keepalive_timeout {_idle_ms(replica_keep_alive)}ms;
    }}

    server {{
        listen {listen};
        client_max_body_size {max_body_bytes};

        location / {{
{proxy}
        }}
    }}
}}
"""


def reload_nginx(pid: int) -> None:
    """Make nginx (master ``pid``) re-read its configuration: new workers take new
    connections, old ones finish the requests they have, so no request fails."""
    os.kill(pid, signal.SIGHUP)


def prepare_nginx_prefix(prefix: Path) -> Path:
    """Create ``prefix`` and nginx's temp folders in it; return the prefix."""
    prefix = Path(prefix).resolve()
    for name in NGINX_TEMP_DIRS:
        (prefix / "temp" / name).mkdir(parents=True, exist_ok=True)
    return prefix


def find_nginx() -> str | None:
    """nginx on PATH, or where Debian installs it (/usr/sbin, off some users' PATH)."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    return found


def nginx_command(prefix: Path, nginx: str | None = None) -> list[str]:
    """nginx in the foreground on the configuration under ``prefix``."""
    prefix = Path(prefix).resolve()
    nginx = nginx or find_nginx() or "nginx"
    return [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"]


def parse_access_log(text: str) -> list[dict[str, str]]:
    """The lines of the access log :func:`nginx_conf` writes, as dicts of
    :data:`ACCESS_LOG_FIELDS` (``-`` where nginx had no value)."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != len(ACCESS_LOG_FIELDS):
            continue  # a retried request names two replicas ("a, b"): kept out on purpose
        rows.append(dict(zip(ACCESS_LOG_FIELDS, parts, strict=True)))
    return rows


def prometheus_config(
    replicas: Sequence[str],
    *,
    rule_files: Sequence[str | Path] = (),
    scrape_interval: str = "5s",
    job: str = "shipyard",
) -> str:
    """prometheus.yml scraping ``/metrics`` of every replica, with ``rule_files``."""
    if not replicas:
        raise InvalidInputError("Prometheus needs at least one replica (HOST:PORT) to scrape.")
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [_check_address(r, "replica") for r in replicas]}],
            }
        ],
    }
    return "# Written by shipyard.deploy.stack.\n" + yaml.safe_dump(config, sort_keys=False)


def replica_environment(
    *, db: str, artifacts: str, s3_endpoint_url: str | None = None, user: str = "replica"
) -> dict[str, str]:
    """The ``SHIPYARD_*`` settings every replica shares: one database, one bucket."""
    if not db.startswith("postgresql"):
        raise InvalidInputError(
            "SHIPYARD_DB: replicas share one database server; give a "
            "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB URL (not SQLite, the default)."
        )
    if not artifacts.startswith("s3://"):
        raise InvalidInputError(
            f"SHIPYARD_ARTIFACTS: replicas share artifacts and the prediction log in S3; "
            f"give an s3://BUCKET/PREFIX URL, got {artifacts!r}."
        )
    env = {"SHIPYARD_DB": db, "SHIPYARD_ARTIFACTS": artifacts, "SHIPYARD_USER": user}
    if s3_endpoint_url:
        env["SHIPYARD_S3_ENDPOINT_URL"] = s3_endpoint_url
    return env


def replica_command(
    deployment: str,
    port: int,
    *,
    cache: str | None = None,
    poll_interval: float = 2.0,
    monitor_interval: float | None = None,
    host: str = "127.0.0.1",
    python: str = sys.executable,
) -> list[str]:
    """``shipyard serve --deployment NAME`` for one replica on ``host:port``."""
    command = [python, "-m", "shipyard.cli", "serve", "--deployment", deployment]
    command += ["--host", host, "--port", str(port), "--poll-interval", f"{poll_interval:g}"]
    if cache:
        command += ["--cache", cache]
    if monitor_interval is not None:
        command += ["--monitor-interval", f"{monitor_interval:g}"]
    return command


def write_stack_files(
    out: Path,
    replicas: Sequence[str],
    *,
    listen: str,
    rule_files: Sequence[str | Path] = (),
    down: Collection[str] = (),
    scrape_interval: str = "5s",
) -> tuple[Path, Path]:
    """Write ``nginx.conf`` (with its temp folders) and ``prometheus.yml`` into ``out``."""
    prefix = prepare_nginx_prefix(out)
    nginx = prefix / "nginx.conf"
    text = nginx_conf(replicas, listen=listen, prefix=prefix, down=down)
    nginx.write_text(text, encoding="utf-8")
    prometheus = prefix / "prometheus.yml"
    rules = [Path(p).resolve() for p in rule_files]
    text = prometheus_config(replicas, rule_files=rules, scrape_interval=scrape_interval)
    prometheus.write_text(text, encoding="utf-8")
    return nginx, prometheus


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m shipyard.deploy.stack write --out DIR --listen H:P --replica H:P ...``."""
    parser = argparse.ArgumentParser(prog="python -m shipyard.deploy.stack")
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="Write nginx.conf and prometheus.yml into --out.")
    write.add_argument("--out", type=Path, required=True)
    write.add_argument("--listen", required=True, help="HOST:PORT nginx listens on.")
    write.add_argument("--replica", action="append", default=[], help="HOST:PORT (repeat).")
    write.add_argument("--rules", action="append", default=[], help="Prometheus rule file.")
    write.add_argument(
        "--down", action="append", default=[], help="HOST:PORT of a replica to leave out."
    )
    write.add_argument(
        "--check-settings",
        action="store_true",
        help="Also check SHIPYARD_DB and SHIPYARD_ARTIFACTS name shared stores.",
    )
    bucket = sub.add_parser("bucket", help="Create the bucket of an s3:// URL if it is missing.")
    bucket.add_argument("url")
    args = parser.parse_args(argv)
    try:
        if args.command == "bucket":
            print(ensure_bucket(args.url, os.environ.get("SHIPYARD_S3_ENDPOINT_URL")))
            return 0
        if args.check_settings:
            replica_environment(
                db=os.environ.get("SHIPYARD_DB", "sqlite (the default)"),
                artifacts=os.environ.get("SHIPYARD_ARTIFACTS", "a local folder (the default)"),
            )
        written = write_stack_files(
            args.out, args.replica, listen=args.listen, rule_files=args.rules, down=args.down
        )
    except InvalidInputError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


def ensure_bucket(url: str, endpoint_url: str | None = None) -> str:
    """Create the bucket of ``s3://BUCKET/...`` unless it exists; return its name."""
    if not url.startswith("s3://") or not url[5:].split("/")[0]:
        raise InvalidInputError(f"expected an s3://BUCKET/PREFIX URL, got {url!r}.")
    import botocore.session  # with the s3 extra; only this command needs it

    name = url[5:].split("/")[0]
    client = botocore.session.get_session().create_client("s3", endpoint_url=endpoint_url)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if name not in existing:
        client.create_bucket(Bucket=name)
    return name


if __name__ == "__main__":
    raise SystemExit(main())
