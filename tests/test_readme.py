"""README.md, followed as a new user follows it: its marked blocks run in order, verbatim.

How a README block takes part (for anyone adding a section):

- `<!-- readme-test -->` on the line before a ```` ```sh ```` or ```` ```python ```` fence:
  the block runs. All marked blocks form one bash script, in README order, run with
  `set -euo pipefail` (so a failing command, an unset variable or a failing pipe stops it),
  as one terminal would: variables and `cd` carry from one shell block to the next. A
  Python block runs as `.venv/bin/python -` (a fresh interpreter each; `print` freely).
- `<!-- readme-test: PATH -->` before any fence: the block must equal the repository's file
  PATH (e.g. the journal example and `examples/journal.csv`).
- Unmarked blocks are not run (the first two commands: this test is the second, and it
  starts the first itself; the production section needs PostgreSQL and several processes).

The script runs in an empty directory where `.venv` is the virtual environment running the
tests and `examples` the repository's, against a fresh gateway that the test starts there
as the README's first command does (`.venv/bin/seqr-gateway serve`: default SQLite file,
demo shop), on a free port: every `127.0.0.1:8080` in the blocks is replaced by that
address, and `SEQR_PORT` / `SEQR_GATEWAY_URL` name it for commands that default to 8080.
No other `SEQR_*` variable of the test's environment reaches the script, and
`XDG_STATE_HOME` is the directory's own (seqr-client remembers reconciled periods there).
"""

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support import REPO
from tests.support.databases import SQLITE
from tests.support.processes import stop_process
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e

README = REPO / "README.md"
MARKER = re.compile(r"^<!-- readme-test(?::\s*(?P<path>\S+))?\s*-->$")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
RUNNABLE = {"sh": "sh", "bash": "sh", "python": "python"}
README_ADDRESS = "127.0.0.1:8080"


@dataclass(frozen=True)
class Block:
    line: int  # of the fence, 1-based
    lang: str
    text: str
    path: str | None  # readme-test: PATH


def readme_blocks(text: str) -> list[Block]:
    """The marked blocks, in order; a marker without a well-formed block is an error."""
    lines = text.splitlines()
    blocks = []
    for number, line in enumerate(lines):
        marked = MARKER.match(line.strip())
        if not marked:
            continue
        fence = FENCE.match(lines[number + 1]) if number + 1 < len(lines) else None
        if fence is None:
            raise AssertionError(f"README line {number + 1}: a readme-test marker must be "
                                 "followed by a ``` fence")
        end = next((i for i in range(number + 2, len(lines)) if lines[i].strip() == "```"),
                   None)
        if end is None:
            raise AssertionError(f"README line {number + 2}: the block never closes")
        lang = fence["lang"]
        if marked["path"] is None and lang not in RUNNABLE:
            raise AssertionError(f"README line {number + 2}: a ```{lang} block cannot run; "
                                 "mark sh or python blocks (or name a file to compare)")
        blocks.append(Block(number + 2, lang, "\n".join(lines[number + 2:end]) + "\n",
                            marked["path"]))
    return blocks


def script(blocks: list[Block], address: str) -> str:
    """The runnable blocks as one bash script, each headed by its README line."""
    parts = ["set -euo pipefail"]
    for block in blocks:
        if block.path is not None:
            continue
        body = block.text.replace(README_ADDRESS, address)
        parts.append(f"# --- README.md line {block.line} ({block.lang})")
        if RUNNABLE[block.lang] == "sh":
            parts.append(f"set -x\n{body}set +x")
        else:
            delimiter = f"README_PYTHON_{block.line}"
            parts.append(f"echo '+ python block of README.md line {block.line}' >&2\n"
                         f".venv/bin/python - <<'{delimiter}'\n{body}{delimiter}")
    return "\n".join(parts) + "\n"


def test_the_marker_syntax_is_understood() -> None:
    sample = ("intro\n<!-- readme-test -->\n```sh\necho 127.0.0.1:8080\n```\n"
              "<!-- readme-test: examples/x.csv -->\n```csv\na,b\n```\n"
              "<!-- readme-test -->\n```python\nprint(1)\n```\n```sh\nnot marked\n```\n")
    blocks = readme_blocks(sample)
    assert [(b.line, b.lang, b.path) for b in blocks] == [
        (3, "sh", None), (7, "csv", "examples/x.csv"), (11, "python", None)]
    text = script(blocks, "127.0.0.1:9")
    assert "echo 127.0.0.1:9\n" in text and "not marked" not in text and "a,b" not in text
    assert ".venv/bin/python - <<'README_PYTHON_11'\nprint(1)\nREADME_PYTHON_11\n" in text
    for broken in ("<!-- readme-test -->\ntext\n", "<!-- readme-test -->\n```sh\nopen\n",
                   "<!-- readme-test -->\n```json\n{}\n```\n"):
        with pytest.raises(AssertionError):
            readme_blocks(broken)


def test_files_shown_in_the_readme_are_the_files() -> None:
    shown = [b for b in readme_blocks(README.read_text(encoding="utf-8")) if b.path]
    assert shown, "the README shows examples/journal.csv"
    for block in shown:
        assert (REPO / block.path).read_text(encoding="utf-8") == block.text, block.path


@pytest.fixture
def user_directory(tmp_path: Path) -> Path:
    """An empty directory with the README's `.venv` (this one) and `examples`."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("the README's commands run from a virtual environment (.venv)")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    (tmp_path / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    return tmp_path


@pytest.fixture
def readme_gateway(user_directory: Path, database_backend: str) -> Iterator[tuple[str, dict]]:
    """The README's first command, serving from the user's directory on a free port."""
    if database_backend != SQLITE:
        pytest.skip("the README runs on its embedded SQLite default, once")
    first = next(b for b in _fenced(README.read_text(encoding="utf-8")) if "serve" in b)
    serve = first.splitlines()[0].rsplit("&& ", 1)[1].strip()
    assert serve == ".venv/bin/seqr-gateway serve", first
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SEQR_") and k != "VIRTUAL_ENV"}
    env.update(SEQR_PORT=str(port), SEQR_GATEWAY_URL=f"http://127.0.0.1:{port}",
               XDG_STATE_HOME=str(user_directory / ".state"))  # seqr-client's own state
    log = user_directory / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(shlex.split(serve), cwd=user_directory, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert "password: demo-password" in log.read_text()  # the demo shop, as promised
        yield f"127.0.0.1:{port}", env
    finally:
        stop_process(process)


def _fenced(text: str) -> list[str]:
    return re.findall(r"^```\w*\n(.*?)^```", text, re.M | re.S)


def test_following_the_readme_works(readme_gateway: tuple[str, dict],
                                    user_directory: Path) -> None:
    address, env = readme_gateway
    blocks = readme_blocks(README.read_text(encoding="utf-8"))
    runnable = [b for b in blocks if b.path is None]
    assert {b.lang for b in runnable} == {"sh", "python"}, "both kinds are marked"
    (user_directory / "readme.sh").write_text(script(blocks, address), encoding="utf-8")
    result = subprocess.run(["bash", "readme.sh"], cwd=user_directory, env=env,
                            capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        gateway = (user_directory / "gateway.log").read_text()[-3000:]
        pytest.fail(f"README stopped (exit {result.returncode}); its last lines:\n"
                    + "\n".join(result.stderr.splitlines()[-60:])
                    + f"\n--- stdout\n{result.stdout[-3000:]}\n--- gateway\n{gateway}")
    # what the blocks left behind: the report written, the reconciliation a match
    assert (user_directory / "period.csv").read_text().startswith(
        "TerminalId,CashierId,SalesAmount,ErsReference\n")
    assert "MATCH: 2 transactions, net 20.00" in result.stdout
