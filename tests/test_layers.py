"""The import contract: ganimate's modules form layers, and imports only point down, never in a cycle.

`LAYERS` is the one declaration, lowest layer first. Each entry of a layer is a group: a module, or a
subpackage with everything below it (the longest entry that matches wins, so `ganimate.restore.cli` is
its own group inside `ganimate.restore`). A module may import any module of a lower layer and any module
of its own group; it may not import upward, nor sideways into another group of its own layer, nor take
part in an import cycle. Every import counts, also those inside functions (deferred imports hide a
cycle, they do not remove it) and under `if TYPE_CHECKING:` (a type is a dependency too). A module that
no entry matches is itself a violation: place it here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("ganimate",),  # the package's __init__ alone: the version
    ("ganimate.errors",),
    ("ganimate.images", "ganimate.flow", "ganimate.memory"),  # arrays, PNGs, grids, atomic writes; optical flow;
    # memory estimates
    ("ganimate.data",),  # the dataset registry and loaders
    ("ganimate.models",),  # the architecture registry
    ("ganimate.config",),  # command configs, validated against the data and model registries
    # device and precision; processes under torchrun; losses; video files; what D sees (DiffAugment, ADA)
    ("ganimate.runtime", "ganimate.distributed", "ganimate.losses", "ganimate.video", "ganimate.augment"),
    ("ganimate.checkpoint",),  # checkpoint files
    ("ganimate.runs",),  # run folders, records, saved configs, rebuilding a run's generator
    ("ganimate.gan", "ganimate.sample"),  # GAN state shared by the trainers; drawing images from a run's G
    ("ganimate.metrics",),  # the metric registry
    ("ganimate.project",),  # projecting real images into a run's generator
    ("ganimate.tensorboard",),  # TensorBoard event files of a run's records
    ("ganimate.report",),  # the run report (HTML page, plots); the engine refreshes it
    ("ganimate.engine",),  # the training loop
    ("ganimate.train", "ganimate.restore", "ganimate.clips", "ganimate.walks"),  # tasks; latent walks
    ("ganimate.cliargs",),  # argparse helpers shared by the command modules
    ("ganimate.restore.cli", "ganimate.clips.cli"),  # each subpackage's commands
    ("ganimate.cli",),  # the command table
    ("ganimate.__main__",),
)


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    file: Path
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.importer} -> {self.imported}"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of `package` under `root`."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of `name` that is a module of the package."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in modules:
            return ".".join(parts[:n])
    return None


def package_imports(root: Path, package: str) -> tuple[dict[str, Path], list[Import]]:
    """Every import of one of the package's modules by another, with ast: top-level, inside functions,
    `from pkg import submodule` and relative imports alike."""
    modules = module_names(root, package)
    found = []
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [_known(a.name, modules) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append(sub if sub in modules else _known(base, modules))
            for target in targets:
                if target is not None and target != name:
                    found.append(Import(name, target, path.relative_to(root), node.lineno))
    return modules, sorted(set(found), key=lambda i: (str(i.file), i.line, i.imported))


def group_of(module: str, layers=LAYERS) -> tuple[int, str] | None:
    """(layer index, group) of a module: the longest matching entry; the root package matches itself only."""
    best = None
    for i, layer in enumerate(layers):
        for group in layer:
            root_only = "." not in group
            if module == group or (not root_only and module.startswith(group + ".")):
                if best is None or len(group) > len(best[1]):
                    best = (i, group)
    return best


def cycles(modules, imports: list[Import]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    graph = {m: sorted({i.imported for i in imports if i.importer == m}) for m in modules}
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(out)


def shortest_cycle(comp: list[str], imports: list[Import]) -> list[Import]:
    """The imports of a shortest cycle through comp[0], found by breadth-first search inside the component."""
    edges = {}
    for i in imports:
        if i.importer in comp and i.imported in comp:
            edges.setdefault(i.importer, []).append(i)
    start, came = comp[0], {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for imp in edges.get(v, []):
                if imp.imported == start:
                    path = [imp]
                    while path[0].importer != start:
                        path.insert(0, came[path[0].importer])
                    return path
                if imp.imported not in came:
                    came[imp.imported] = imp
                    nxt.append(imp.imported)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")


def check_layers(root: Path, package: str = "ganimate", layers=LAYERS) -> list[str]:
    """Every breach of the contract as one line: unplaced modules, cycles, upward and sideways imports."""
    modules, imports = package_imports(root, package)
    problems = [f"{path.relative_to(root)}: {m} is in no layer of the table"
                for m, path in modules.items() if group_of(m, layers) is None]
    for comp in cycles(modules, imports):
        path = shortest_cycle(comp, imports)
        problems.append(f"import cycle among {len(comp)} modules ({', '.join(comp)}), e.g. "
                        + "; ".join(map(str, path)))
    for imp in imports:
        a, b = group_of(imp.importer, layers), group_of(imp.imported, layers)
        if a is None or b is None or a[1] == b[1]:
            continue
        if b[0] > a[0]:
            problems.append(f"upward import {imp} (layer {a[0]} {a[1]} imports layer {b[0]} {b[1]})")
        elif b[0] == a[0]:
            problems.append(f"sideways import {imp} ({a[1]} and {b[1]} share layer {a[0]})")
    return problems


def test_ganimate_imports_follow_the_layers():
    problems = check_layers(SRC)
    assert not problems, f"{len(problems)} breaches of the import contract:\n" + "\n".join(problems)


def test_every_table_entry_names_a_module():
    modules = module_names(SRC, "ganimate")
    stale = [g for layer in LAYERS for g in layer if g not in modules]
    assert not stale, f"layer table entries with no module: {stale}"


def _package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


TOY_LAYERS = (("toy",), ("toy.low",), ("toy.mid", "toy.side"), ("toy.sub",), ("toy.top",))


def test_checker_reports_cycle_upward_sideways_and_unplaced(tmp_path):
    root = _package(tmp_path, {
        "toy/__init__.py": "",
        "toy/low.py": """
            def f():
                from toy.top import g  # upward, deferred
            """,
        "toy/mid.py": "from . import side\n",  # sideways, relative
        "toy/side.py": "import toy\n",
        "toy/sub/__init__.py": "from toy.sub import a\n",
        "toy/sub/a.py": """
            def h():
                from .b import x
            """,
        "toy/sub/b.py": "from toy.sub import a\n",  # a <-> b through `from pkg import module`
        "toy/top.py": "from toy.sub.a import h\nimport toy.mid\n",
        "toy/stray.py": "",
    })
    problems = check_layers(root, "toy", TOY_LAYERS)
    text = "\n".join(problems)
    assert "upward import toy/low.py:3: toy.low -> toy.top" in text, text
    assert "sideways import toy/mid.py:1: toy.mid -> toy.side" in text, text
    assert "toy/stray.py: toy.stray is in no layer" in text, text
    cycle_lines = [p for p in problems if p.startswith("import cycle")]
    assert cycle_lines == ["import cycle among 2 modules (toy.sub.a, toy.sub.b), e.g. toy/sub/a.py:3: toy.sub.a -> "
                           "toy.sub.b; toy/sub/b.py:1: toy.sub.b -> toy.sub.a"], text
    assert len(problems) == 4, text  # top -> sub.a, top -> mid, side -> toy and sub -> sub.a point down or inward


def test_checker_passes_a_clean_package(tmp_path):
    root = _package(tmp_path, {
        "toy/__init__.py": "__version__ = '1'\n",
        "toy/low.py": "from toy import __version__\n",
        "toy/mid.py": "from .low import __version__\n",
        "toy/side.py": "",
        "toy/sub/__init__.py": "",
        "toy/sub/a.py": "from toy.sub import b\nfrom ..mid import __version__\n",
        "toy/sub/b.py": "import os\nimport toy.low\n",
        "toy/top.py": "import toy.sub.a\n",
    })
    assert check_layers(root, "toy", TOY_LAYERS) == []


HEAVY = ("cv2", "skimage", "scipy")


@pytest.mark.parametrize("argv", [[], ["--help"], ["sample", "--help"]])
def test_command_table_leaves_heavy_modules_unimported(argv):
    """Building the parser (what `ganimate --help` and `ganimate sample` pay before they run) must not load
    OpenCV, scikit-image or SciPy; the modules that need them import them where they are used."""
    code = textwrap.dedent(f"""
        import sys
        import ganimate.cli as cli
        parser = cli.build_parser()
        try:
            parser.parse_args({argv!r} or ["--version"])
        except SystemExit:
            pass
        print(sorted({{m.split(".")[0] for m in sys.modules}} & {set(HEAVY)!r}))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout
