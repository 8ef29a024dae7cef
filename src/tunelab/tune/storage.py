"""Where a study lives: SQLite in the study directory by default, or an RDB URL shared by workers.

Errors of the database layer (driver missing, server down, wrong password) become ResourceError /
ConfigError naming the URL and the fix, instead of SQLAlchemy tracebacks.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

from tunelab.errors import ConfigError, ResourceError

__all__ = ["open_storage", "storage_url"]

# A worker that dies mid-trial stops beating; after the grace period its trial is failed and
# retried once by whoever runs the next trial (the study resumes without a lost trial).
_HEARTBEAT_SECONDS = 30
_GRACE_SECONDS = 120


def storage_url(wanted: str | None, study_dir: Path) -> str:
    """The storage URL to use: ``wanted``, or sqlite:///<study_dir>/study.db.

    ``postgresql://`` means SQLAlchemy's psycopg2 driver; when only psycopg 3 is installed the
    URL is pointed at it (postgresql+psycopg://), so the plain URL users copy works.
    """
    if not wanted:
        return f"sqlite:///{Path(study_dir).resolve() / 'study.db'}"
    if "://" not in wanted:
        raise ConfigError(
            f"tune.storage={wanted!r} is not a database URL",
            "use e.g. postgresql://user:password@host:5432/optuna, or leave it unset for SQLite in the study dir",
        )
    scheme, rest = wanted.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        has_v2 = importlib.util.find_spec("psycopg2") is not None
        has_v3 = importlib.util.find_spec("psycopg") is not None
        if not has_v2 and not has_v3:
            raise ResourceError(
                "a PostgreSQL storage needs a PostgreSQL driver, and none is installed",
                "pip install 'tunelab[postgres]' (psycopg 3)",
            )
        scheme = "postgresql" if has_v2 else "postgresql+psycopg"
    return f"{scheme}://{rest}"


def open_storage(url: str) -> Any:
    """An Optuna RDBStorage for ``url`` with heartbeats (stale trials of dead workers are retried)."""
    import optuna
    import sqlalchemy.exc

    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # several local workers write to one file: wait for the lock instead of failing at once
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=_HEARTBEAT_SECONDS,
                grace_period=_GRACE_SECONDS,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
        except sqlalchemy.exc.NoSuchModuleError as exc:
            raise ConfigError(
                f"tune.storage: unknown database type in {url.split('://')[0]!r} ({exc})",
                "use sqlite:///path/study.db or postgresql://user:pw@host/db",
            ) from None
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
            raise ResourceError(
                f"cannot open the study storage {_safe(url)}: {str(exc.orig).strip().splitlines()[0]}",
                "check that the database server runs and the URL (host, port, user, password, database) is right",
            ) from None


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
