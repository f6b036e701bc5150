"""An Airflow DAG that drives the loop: one ``shipyard loop tick --model M`` task per model.

The DAG holds no logic of its own: each task is the same command a cron job or a
Kubernetes CronJob runs, so the loop's claims (one run per trigger, cool-downs)
keep two schedulers from retraining twice. Tasks of different models run in
parallel; ``max_active_runs=1`` keeps one tick of a model from overlapping the next.

>>> text = airflow_dag(["iris"], config="/srv/loop.yaml", schedule="*/10 * * * *")
>>> "MODELS = ['iris']" in text and "CONFIG = '/srv/loop.yaml'" in text
True
>>> compile(text, "dag.py", "exec") is not None
True
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from croniter import croniter

from shipyard.errors import InvalidInputError
from shipyard.names import check_name

_TEMPLATE = '''"""Shipyard's closed loop driven by Airflow (`shipyard loop export --airflow`).

Each task runs `shipyard loop tick` for one model; regenerate this file when the
loop config gains or loses a model.
"""

from datetime import datetime, timedelta

from airflow import DAG

try:  # Airflow 3 ships the BashOperator in its standard provider
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

MODELS = {models!r}
SHIPYARD = {shipyard!r}
CONFIG = {config!r}

with DAG(
    dag_id={dag_id!r},
    description="Shipyard loop: retraining triggers, retrain, gate, canary, promote",
    schedule={schedule!r},
    start_date=datetime(2024, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours={timeout_hours}),
    tags=["shipyard"],
) as dag:
    for model in MODELS:
        BashOperator(
            task_id=f"tick_{{model}}",
            # Exit 1 (a trigger could not be evaluated, a run failed) fails the task.
            bash_command=f"{{SHIPYARD}} loop tick --config {{CONFIG}} --model {{model}}",
            append_env=True,
        )
'''


def airflow_dag(
    models: Sequence[str],
    *,
    config: str,
    schedule: str = "*/5 * * * *",
    dag_id: str = "shipyard_loop",
    shipyard: str = "shipyard",
    timeout_hours: int = 6,
) -> str:
    """The DAG file's text for ``models`` of the loop config at ``config``."""
    if not models:
        raise InvalidInputError("The loop config names no models to export.")
    for model in models:
        check_name(model, kind="Model name")
    check_name(dag_id, kind="DAG id")
    if not croniter.is_valid(schedule):
        raise InvalidInputError(f"--schedule {schedule!r} is not a cron expression.")
    return _TEMPLATE.format(
        models=list(models),
        shipyard=shlex.quote(shipyard),
        config=shlex.quote(config),
        dag_id=dag_id,
        schedule=schedule,
        timeout_hours=int(timeout_hours),
    )


__all__ = ["airflow_dag"]
