"""Every code block of README.rst runs as written.

Python blocks run one by one, each in a fresh namespace and an empty working folder (a user
copies one block, so each must stand alone).  An RST comment right before a block steers
this test, with one or more of (comma-separated): ``slow`` (runs with the slow tests
only), ``dataset`` (runs after the README's dataset command, at a reduced size, in the same
folder), ``requires MODULE`` (skipped without that optional package) and ``skip REASON``
(never runs here).
Shell blocks are checked against the command-line parser, and the documented training
chain (dataset, then train, then resume) is run at a reduced size.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import pytest

from ase_hamgnn.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.rst"


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int
    section: str
    control: str  # "", "slow" or "skip ..."

    @property
    def name(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"{slug}-line{self.line}"


def readme_blocks(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks, section = [], ""
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and re.fullmatch(r"=+", lines[i + 1]) and line.strip():
            section = line.strip()
        m = re.fullmatch(r"\.\. code-block:: (\w+)", line)
        if not m:
            continue
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        c = re.fullmatch(r"\.\. readme-test: (.*)", lines[j].strip())
        control = c.group(1).strip() if c else ""
        body, k = [], i + 1
        while k < len(lines) and (not lines[k].strip() or lines[k].startswith("   ")):
            body.append(lines[k])
            k += 1
        indent = min(len(b) - len(b.lstrip()) for b in body if b.strip())
        code = "\n".join(b[indent:] for b in body).strip("\n") + "\n"
        blocks.append(Block(m.group(1), code, i + 1, section, control))
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))
PYTHON = [b for b in BLOCKS if b.language == "python"]
SHELL = [b for b in BLOCKS if b.language in ("bash", "console", "shell")]


def _controls(block: Block) -> list[str]:
    return [c.strip() for c in block.control.split(",") if c.strip()]


def _param(block: Block):
    marks = []
    for control in _controls(block):
        if control == "slow":
            marks.append(pytest.mark.slow)
        elif control.startswith("skip"):
            marks.append(pytest.mark.skip(reason=f"README says: {control}"))
        elif not (control == "dataset" or control.startswith("requires ")):
            raise ValueError(f"README line {block.line}: unknown readme-test control "
                             f"{control!r} (use slow, dataset, requires MODULE, skip REASON)")
    return pytest.param(block, id=block.name, marks=marks)


def test_readme_has_blocks_of_each_kind():
    assert len(PYTHON) >= 10 and len(SHELL) >= 5
    assert {b.language for b in BLOCKS} <= {"python", "bash"}


@pytest.mark.parametrize("block", [_param(b) for b in PYTHON])
def test_python_block_runs(block, tmp_path, monkeypatch):
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for control in _controls(block):
        if control.startswith("requires "):
            pytest.importorskip(control.split()[1])
    monkeypatch.chdir(tmp_path)
    if "dataset" in _controls(block):
        _run_cli(_reduced(_training_chain()[0]), tmp_path)
    namespace = {"__name__": "__readme__"}
    try:
        exec(compile(block.code, f"README.rst:{block.line}", "exec"), namespace)
    finally:
        plt.close("all")
    # A block that draws a figure saves it, so a user copying it gets a file.
    if re.search(r"\.plot\(|plot_\w+\(", block.code):
        assert "savefig" in block.code, f"README line {block.line} plots but saves nothing"
        assert any(tmp_path.rglob("*.png")), f"README line {block.line} wrote no PNG"


def test_python_blocks_use_what_they_import():
    """No block imports a name that it then never uses."""
    for block in PYTHON:
        for line in block.code.splitlines():
            m = re.match(r"\s*from \S+ import \(?([\w, ]+)\)?$", line)
            if not m:
                continue
            for name in (n.strip() for n in m.group(1).split(",")):
                if name:
                    uses = len(re.findall(rf"\b{re.escape(name)}\b", block.code))
                    assert uses >= 2, f"README line {block.line}: {name} imported, never used"


def _commands(block: Block) -> list[list[str]]:
    """The ``ase-hamgnn`` command lines of a shell block, as argument lists."""
    joined = re.sub(r"\\\n\s*", " ", block.code)
    found = []
    for line in joined.splitlines():
        line = line.split("#", 1)[0].strip().rstrip("&").strip()
        if "ase_hamgnn.cli" in line:
            line = "ase-hamgnn " + line.split("ase_hamgnn.cli", 1)[1]
        if line.startswith("ase-hamgnn "):
            found.append(shlex.split(line)[1:])
    return found


def test_shell_commands_parse():
    """Every ``ase-hamgnn`` command in the README has options the CLI knows."""
    parser = build_parser()
    commands = [c for b in SHELL for c in _commands(b)]
    assert len(commands) >= 6
    for argv in commands:
        parser.parse_args(argv)


def _training_chain() -> tuple[list[str], list[str]]:
    """The README's dataset command and training command of the synthetic NiBrI model."""
    section = [b for b in SHELL if "Training data" in b.section or "HamGNN++ model" in b.section]
    commands = [c for b in section for c in _commands(b)]
    dataset = next(c for c in commands if c[:1] == ["dataset"] and "--system" in c)
    train = next(c for c in commands if c[:1] == ["train"])
    return dataset, train


def test_training_chain_reads_what_the_dataset_step_writes():
    from ase_hamgnn.train import load_train_config

    dataset, train = _training_chain()
    out = Path(dataset[dataset.index("--out") + 1])
    config = load_train_config(ROOT / train[1])
    assert Path(config.dataset).resolve() == (ROOT / out).resolve()
    # The comment next to the train command names where checkpoints go.
    block = next(b for b in SHELL if "ase-hamgnn train configs/nibri-reference.toml" in b.code)
    rel = Path(config.out).resolve().relative_to(ROOT)
    assert f"{rel}/last.pt" in block.code


def _reduced(argv: list[str], n: int = 12) -> list[str]:
    small = list(argv)
    small[small.index("-n") + 1] = str(n)
    return small


def _run_cli(argv: list[str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "ase_hamgnn", *argv], cwd=cwd,
                          capture_output=True, text=True)
    assert done.returncode == 0, f"ase-hamgnn {' '.join(argv)} failed:\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.mark.slow
def test_training_chain_runs(tmp_path):
    """Dataset, training and resuming as the README chains them, at a reduced size."""
    dataset, train = _training_chain()
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / train[1], tmp_path / "configs")
    _run_cli(_reduced(dataset), tmp_path)
    for epochs in ("1", "2"):  # train, then resume for one more epoch
        assert "epoch" in _run_cli([*train, "--epochs", epochs], tmp_path)
    from ase_hamgnn.train import load_train_config

    out = Path(load_train_config(tmp_path / train[1]).out)
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
