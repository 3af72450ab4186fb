"""What /health answers (and the console's overview shows): the database and the report queue."""

import logging
from typing import Any

from sqlalchemy import text

from storage.database import Database
from storage.jobs import waiting_jobs

log = logging.getLogger(__name__)


def check(db: Database) -> tuple[bool, dict[str, Any]]:
    """Database reachability and the report queue: how many wait, the oldest for how long."""
    try:
        with db.read() as session:
            session.execute(text("SELECT 1"))
            waiting, oldest_age = waiting_jobs(session)
    except Exception:
        log.warning("/health: the database cannot be reached", exc_info=True)
        # the error itself (URL, host, driver text) goes to the log only
        return False, {"status": "error", "database": "unreachable"}
    return True, {
        "status": "ok", "database": "ok", "report_jobs_waiting": waiting,
        "oldest_waiting_job_age_seconds": round(oldest_age, 3),
    }
