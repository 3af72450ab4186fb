"""SQLite writers of every gateway process take turns on `<database>-writelock`, so a writer
goes as soon as the one before it is done instead of sleeping in SQLite's busy backoff."""

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from storage.database import Database
from tests.support.databases import on_postgresql

HOLD = """
import fcntl, sys
with open(sys.argv[1], "ab") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    print("holding", flush=True)
    sys.stdin.readline()  # until the test says so
"""


def test_a_writer_waits_for_the_turn_another_process_holds(tmp_path: Path) -> None:
    if on_postgresql():
        pytest.skip("SQLite's writers only")
    db = Database(f"sqlite:///{tmp_path / 'turns.sqlite3'}")
    db.create_schema()
    lock_file = f"{tmp_path / 'turns.sqlite3'}-writelock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, lock_file],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        entered = threading.Event()

        def write() -> None:
            with db.write() as session:
                session.connection().exec_driver_sql("SELECT 1")
                entered.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert not entered.wait(0.5)  # the other process's turn: not entered yet
        assert holder.stdin is not None
        holder.stdin.write("release\n")
        holder.stdin.flush()
        writer.join(10)
        assert entered.is_set()
    finally:
        holder.kill()
        holder.wait()
        db.dispose()

