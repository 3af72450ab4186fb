"""The suite reads nothing beside the repository: a guard on every file the test process opens.

Users clone the repository alone; the development machines have a `shared` folder beside
it (the SEQR documentation). A test that read from there would pass here and fail for every
user, so any open (or directory listing) of a path under the repository's parent folder
`shared` is refused while the suite runs, whether that folder exists or not. The refusal is a
`ReadOutsideRepositoryError` (not an OSError, so that no "file missing" fallback swallows it), and
is also recorded, so that the test (or, outside any test, the run) fails if some code caught
it anyway (tests/conftest.py).

The guard sees what Python opens; a C library reading a path itself (lxml parsing a file
name) and the gateway processes the tests start are out of its sight. So `.ci/run` goes
further: it runs the whole suite in a copy of the repository with nothing beside it, and
tests/test_self_contained.py collects the suite in such a copy, and checks that no file of
the repository names that folder.
"""

import os
import sys

from tests.support import REPO

FORBIDDEN = (REPO.parent / "shared",)
_EVENTS = {"open", "os.listdir", "os.scandir"}

refused: list[str] = []


class ReadOutsideRepositoryError(RuntimeError):
    """A test read a file that users do not have."""


def forbidden(path: object) -> bool:
    if isinstance(path, int) or path is None:  # a file descriptor: opened before
        return False
    try:
        text = os.path.abspath(os.fsdecode(path))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return any(text == str(root) or text.startswith(str(root) + os.sep) for root in FORBIDDEN)


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event in _EVENTS and args and forbidden(args[0]):
        path = os.fsdecode(args[0])  # type: ignore[arg-type]
        refused.append(path)
        raise ReadOutsideRepositoryError(
            f"a test read {path}, outside the repository: users do not have it; "
            "copy what the tests need into tests/data/")


_installed = False


def install() -> None:
    """Start guarding (once per process: audit hooks cannot be removed)."""
    global _installed
    if not _installed:
        sys.addaudithook(_audit)
        _installed = True
