"""gateway/compat.py: spyne 2.14 imports on this Python, and the shim leaves the rest alone.

Each check runs in a fresh interpreter, where nothing has imported spyne yet. `.ci/run`
runs these (marked e2e) on Python 3.11, 3.12 and 3.13.
"""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_spyne_imports_through_the_gateway_and_standard_modules_keep_their_spec() -> None:
    result = fresh_python(
        "import collections.abc, urllib.parse\n"
        "specs = collections.abc.__spec__, urllib.parse.__spec__\n"
        "import gateway\n"
        "from spyne import Application\n"
        "from spyne.protocol.soap import Soap11\n"
        "from spyne.server.wsgi import WsgiApplication\n"
        "import spyne.util.six.moves.collections_abc as moved\n"
        "from spyne.util.six.moves.urllib.parse import quote\n"
        "assert moved is collections.abc and quote is urllib.parse.quote\n"
        "assert (collections.abc.__spec__, urllib.parse.__spec__) == specs\n"
        "from gateway.wire.app import create_app\n"
        "print('ok')\n")
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


def test_without_the_shim_spyne_does_not_import_from_python_3_12() -> None:
    """Why gateway/compat.py exists; once spyne fixes its bundled six, this test says so."""
    result = fresh_python("import spyne")
    if sys.version_info >= (3, 12):
        assert result.returncode == 1
        assert "No module named 'spyne.util.six.moves'" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
