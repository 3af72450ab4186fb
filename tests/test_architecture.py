"""The layers of ARCHITECTURE.md hold: no module imports a higher layer, no import cycles, and
test modules import only from tests/support/. Each check is also shown failing on a tree that
breaks it, so it cannot pass by reading nothing."""

from pathlib import Path

from tests.support.layers import cycles, imports_outside_support, layer_violations

ROOT = Path(__file__).resolve().parents[1]


def test_no_module_imports_a_higher_layer() -> None:
    assert layer_violations(ROOT) == []


def test_no_import_cycles() -> None:
    assert cycles(ROOT) == []


def test_test_modules_import_only_from_tests_support() -> None:
    assert imports_outside_support(ROOT / "tests") == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for package in ("wsdl", "storage", "gateway", "client", "seqr_pytest"):
        (tmp_path / package).mkdir(exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_layer_check_sees_a_violation(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "gateway/config.py": "from gateway import payments\n",  # settings above the domain
        "gateway/payments.py": "from gateway.config import X\n",  # allowed
        "gateway/wire/__init__.py": "", "gateway/wire/app.py": "",
        "gateway/background/__init__.py": "",
        "gateway/background/loop.py": "from gateway.wire import app\n",  # a sibling
        "storage/models.py": "import gateway.payments\n",  # storage above the gateway
        "client/service.py": "from storage import models\n",  # client beside the gateway
    })
    found = "\n".join(layer_violations(root))
    assert "gateway/config.py:1" in found
    assert "gateway/background/loop.py:1" in found
    assert "storage/models.py:1" in found
    assert "client/service.py:1" in found
    assert "gateway/payments.py" not in found


def test_the_cycle_check_sees_a_cycle(tmp_path: Path) -> None:
    root = _tree(tmp_path, {
        "gateway/a.py": "from gateway import b\n",
        "gateway/b.py": "def f():\n    from gateway.a import g\n",
    })
    assert cycles(root) == [["gateway.a", "gateway.b", "gateway.a"]]


def test_the_tests_check_sees_a_test_importing_a_test(tmp_path: Path) -> None:
    tests = tmp_path / "tests"
    (tests / "support").mkdir(parents=True)
    (tests / "test_a.py").write_text("from tests.test_b import helper\n"
                                     "from tests.support.envelopes import envelope\n")
    (tests / "test_b.py").write_text("from tests.conftest import make_shop\n")
    (tests / "support" / "x.py").write_text("from tests.test_a import thing\n")
    assert imports_outside_support(tests) == [
        "tests/support/x.py:1: imports tests.test_a",
        "tests/support/x.py:1: imports tests.test_a.thing",
        "tests/test_a.py:1: imports tests.test_b",
        "tests/test_a.py:1: imports tests.test_b.helper",
        "tests/test_b.py:1: imports tests.conftest",
        "tests/test_b.py:1: imports tests.conftest.make_shop",
    ]
