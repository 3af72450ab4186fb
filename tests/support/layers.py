"""The import rules of ARCHITECTURE.md, read from the source with `ast` (nothing is imported).

Every module of ours gets a layer; a module may import its own layer's modules and those of
lower layers, never a higher layer nor a sibling at the same height (wire and background
know nothing of each other). `client` stands beside the gateway: it may import only `wsdl`.
Test modules import only from `tests.support`, never from another test module or conftest.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

#: (layer, height): the first prefix that matches a module names its layer
LAYERS: list[tuple[str, str, int]] = [
    ("wsdl", "wsdl", 0),
    ("storage", "storage", 1),
    ("gateway.config", "settings", 2),
    ("gateway.service", "service", 4),
    ("gateway.wire", "wire", 5),
    ("gateway.background", "background", 5),
    ("gateway.cli", "cli", 6),
    ("gateway", "domain", 3),
    ("client", "client", 3),
    ("seqr_pytest", "plugin", 7),
]
#: what `client` may import besides itself: it must work against a real SEQR
CLIENT_MAY_IMPORT = {"wsdl"}
PACKAGES = ("wsdl", "storage", "gateway", "client", "seqr_pytest")
#: layers that may use the client (the pytest plugin hands it to users' tests)
MAY_IMPORT_CLIENT = {"client", "plugin"}


def layer_of(module: str) -> tuple[str, int] | None:
    for prefix, name, height in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return name, height
    return None


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(root: Path, path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file, relative ones resolved."""
    package = module_name(root, path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(filter(None, [*anchor, base]))
            yield node.lineno, base
            for alias in node.names:  # `from gateway import payments` imports gateway.payments
                yield node.lineno, f"{base}.{alias.name}"


def source_files(root: Path) -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((root / package).rglob("*.py"))


def known_modules(root: Path) -> set[str]:
    return {module_name(root, path) for path in source_files(root)}


def layer_violations(root: Path) -> list[str]:
    known = known_modules(root)
    problems = []
    for path in source_files(root):
        me = module_name(root, path)
        mine = layer_of(me)
        assert mine is not None, me
        for line, target in imports(root, path):
            if target not in known or target == me:
                continue
            theirs = layer_of(target)
            assert theirs is not None, target
            where = (f"{path.relative_to(root)}:{line}: {me} ({mine[0]}) imports {target} "
                     f"({theirs[0]})")
            if mine[0] == "client":
                if theirs[0] != "client" and target.split(".")[0] not in CLIENT_MAY_IMPORT:
                    problems.append(where)
            elif (theirs[0] == "client" and mine[0] not in MAY_IMPORT_CLIENT) or (
                    theirs[0] != mine[0] and theirs[1] >= mine[1]):
                problems.append(where)
    return problems


def cycles(root: Path) -> list[list[str]]:
    """Import cycles between our modules (every import counts, wherever it stands)."""
    known = known_modules(root)
    graph: dict[str, set[str]] = {m: set() for m in known}
    for path in source_files(root):
        me = module_name(root, path)
        for _, target in imports(root, path):
            if target in known and target != me and not me.startswith(target + "."):
                graph[me].add(target)  # a package's own __init__ is not a cycle
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def imports_outside_support(tests: Path) -> list[str]:
    """Imports of `tests.*` outside `tests.support` (and of conftest) by test modules, and of
    test modules by `tests.support`."""
    problems = []
    for path in sorted(tests.rglob("*.py")):
        support = "support" in path.relative_to(tests).parts
        if not (support or path.name.startswith("test_")):
            continue
        for line, target in imports(tests.parent, path):
            first = target.split(".")
            bad = (first[0] == "conftest" or target.startswith("tests.conftest")
                   or (first[0] == "tests" and len(first) > 1 and first[1] != "support")
                   or first[0].startswith("test_"))
            if bad:
                problems.append(f"{path.relative_to(tests.parent)}:{line}: imports {target}")
    return problems
