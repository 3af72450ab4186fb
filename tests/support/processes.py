"""Gateway and report-worker processes the tests start and kill: `ProductionGateway` (a
process group of its own, so `kill -9` reaches the gunicorn master and every worker),
`start_report_worker`, `stop_process`.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.servers import GatewayServer


def start_report_worker(db_url: str, log_path: Path, lease: float, *extra: str
                        ) -> subprocess.Popen[bytes]:
    """`seqr-gateway worker` as a process of its own."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", "worker", "--database-url", db_url,
             "--report-delay", "0", "--job-lease", str(lease), *extra],
            stdout=log, stderr=subprocess.STDOUT,
        )


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL if it does not go within 10 s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def worker_pid(lease_owner: str | None) -> int | None:
    """The process id in a worker name (`host:pid:random`)."""
    if not lease_owner:
        return None
    return int(lease_owner.rsplit(":", 2)[1])


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


class ProductionGateway(GatewayServer):
    """tests.conftest.GatewayServer in a process group of its own: `kill9()` is `kill -9`
    of the gunicorn master and every worker at once, as a crash would be, and `start()`
    again serves on the same port, as the registers know it. `start()` is also patient
    with a busy machine (or busy workers): a slow /health is not a failed start."""

    def start(self) -> "ProductionGateway":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()}")
            try:  # the registers may keep its workers busy: wait a little longer
                if requests.get(self.base + "/health", timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not start: {self.log_path.read_text()}")

    def processes(self) -> list[int]:
        return [] if self.process is None else _group_members(self.process.pid)

    def kill9(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(15)
        deadline = time.monotonic() + 15
        while self.processes():
            assert time.monotonic() < deadline, f"still alive after kill -9: {self.processes()}"
            time.sleep(0.05)

    def stop(self) -> None:
        super().stop()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):  # any worker left behind
                os.killpg(self.process.pid, signal.SIGKILL)
