"""The repository stands alone: the suite reads nothing beside it, and runs where it is cloned.

Three checks, each able to fail on its own:
- no file of the repository names the documentation folder that sits beside it on the
  development machines (users do not have it);
- the guard of tests/support/isolation.py is on: a read there fails the test that does it, even
  where the folder exists;
- the whole suite collects in a copy of the repository with nothing beside it (module-level
  reads, as the WSDL's once was, would stop it there).
`.ci/run` goes all the way: it runs the whole suite in such a copy.
"""

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, isolation
from tests.support.databases import SQLITE
from tests.support.official import OFFICIAL_WSDL, SAMPLES

BESIDE = "../" + "shared"  # spelled apart so that this file does not name it
DOCUMENTATION = "shared" + "/seqr"
SKIPPED_PARTS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "build"}

#: the official WSDL as published (sha256); wsdl/ must keep it byte for byte
OFFICIAL_WSDL_SHA256 = "c515d9c5d9a59ac928e437817b8cfc069143d70958f467826ce0c8748dc45f24"


def repository_files() -> list[Path]:
    """The repository's files (relative): git's list in a checkout, else a walk."""
    if (REPO / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
        return [Path(name) for name in listed if name and (REPO / name).is_file()]
    return [path.relative_to(REPO) for path in REPO.rglob("*") if path.is_file()
            and not SKIPPED_PARTS & set(path.relative_to(REPO).parts)
            and not any(part.endswith(".egg-info") for part in path.parts)]


def test_no_file_names_the_folder_beside_the_repository() -> None:
    named = []
    for path in repository_files():
        if path.suffix not in {".py", ".cfg", ".toml", ".ini", ".md", ".txt", ".sh", ""}:
            continue
        text = (REPO / path).read_text(encoding="utf-8", errors="replace")
        if BESIDE in text or DOCUMENTATION in text:
            named.append(str(path))
    assert named == [], f"these files name the folder users do not have: {named}"


def test_the_data_the_tests_need_is_in_the_repository() -> None:
    assert OFFICIAL_WSDL.is_relative_to(REPO) and SAMPLES.is_relative_to(REPO)
    assert hashlib.sha256(OFFICIAL_WSDL.read_bytes()).hexdigest() == OFFICIAL_WSDL_SHA256
    assert sorted(p.name for p in SAMPLES.glob("*.xml")) == [
        *(f"executeReport-STD_RECON_00{n}.xml" for n in (1, 2, 3, 4, 6, 7)),
        "markTransactionPeriod-shop.xml", "markTransactionPeriod-terminal.xml"]


def test_a_read_beside_the_repository_fails_the_test() -> None:
    target = REPO.parent / "shared" / "seqr" / "SPEC.md"
    before = len(isolation.refused)
    with pytest.raises(isolation.ReadOutsideRepositoryError, match="outside the repository"):
        target.read_text()
    with pytest.raises(isolation.ReadOutsideRepositoryError):
        os.listdir(REPO.parent / "shared")
    assert isolation.refused[before:] == [str(target), str(REPO.parent / "shared")]
    del isolation.refused[before:]  # refused on purpose: not a failure of the run
    assert isolation.forbidden(str(REPO / ".." / "shared" / "x"))
    assert not isolation.forbidden(str(REPO / "wsdl" / "ERSWSExternalClientService.wsdl"))


def test_the_suite_collects_in_a_copy_with_nothing_beside_it(tmp_path: Path,
                                                         database_backend: str) -> None:
    if database_backend != SQLITE:
        pytest.skip("once, on SQLite")
    alone = tmp_path / "alone" / "seqr-emulator"
    for path in repository_files():
        (alone / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, alone / path)
    assert os.listdir(alone.parent) == ["seqr-emulator"]
    env = {k: v for k, v in os.environ.items() if k != "SEQR_TEST_DATABASE_URL"}

    def pytest_in_copy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                               "-p", "no:randomly", "-q", *args], cwd=alone, env=env,
                              capture_output=True, text=True, timeout=600)

    collected = pytest_in_copy("--collect-only")
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    last = collected.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ tests collected in [\d.]+s", last), last  # no errors
    where = subprocess.run([sys.executable, "-c", "import gateway, tests; "
                            "print(gateway.__file__); print(tests.__file__)"],
                           cwd=alone, env=env, capture_output=True, text=True, check=True)
    assert all(line.startswith(str(alone)) for line in where.stdout.split()), where.stdout
