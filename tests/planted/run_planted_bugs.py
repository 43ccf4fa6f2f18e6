"""Re-introduce, one at a time, the bugs that once survived the suite (issue 18) and check that each now fails a test.

    python tests/planted/run_planted_bugs.py             # every bug, its unit tests (about 3 minutes on 2 cores)
    python tests/planted/run_planted_bugs.py --with-integration   # also the torchrun / packaging tests (+10 min)
    python tests/planted/run_planted_bugs.py hd95_spacing_ignored  # one bug

Each bug is a small text edit of a copy of the repository (the working tree is never touched): the copy is made
with ``shutil.copytree`` (no build outputs), edited, the bundles regenerated when the edit is to the paper's
facts, and the named tests are run there with this interpreter. A bug is *caught* when pytest fails. The script
exits 1 if any bug is missed, or if an edit no longer applies (the code moved: update the edit here).

Not part of the test suite (it runs the suite many times); docs/TESTING.md lists the results.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class PlantedBug:
    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    regenerate: bool = False  # the edit is to dsd_tools/paper.py: rewrite the bundles from it
    integration: tuple[str, ...] = ()


BUGS = (
    PlantedBug("mmwhs_205_420_swapped", "MMWHS raw values 205 and 420 swapped in the label mapping",
               "dsd_tools/paper.py", "raw_label_values=(205, 420, 500", "raw_label_values=(420, 205, 500",
               ("tests/unit/test_recipe.py", "tests/unit/test_data.py"), regenerate=True),
    PlantedBug("brats_tc_labels_1_3", "BraTS tumour core computed from labels (1, 3) instead of (2, 3)",
               "dsd_tools/paper.py", '"TC": (2, 3)', '"TC": (1, 3)', ("tests/unit/test_transforms.py",),
               regenerate=True),
    PlantedBug("hd95_spacing_ignored", "HD95 computed in voxels although mm are promised",
               "dsd_components/metrics.py",
               'kwargs["spacing"] = [float(s) for s in y_pred.pixdim[: y_pred.ndim - 2]]', "pass",
               ("tests/unit/test_metrics.py", "tests/unit/test_hd95_vs_monai.py")),
    PlantedBug("every_rank_writes_checkpoints", "every DDP rank writes latest.pt and model.pt",
               "dsd_components/handlers.py", "        if self.rank != 0:\n            return\n        state",
               "        state",
               ("tests/unit/test_checkpointer.py",), integration=("tests/integration/test_multi_gpu.py",)),
    PlantedBug("every_rank_rank0_seed", "every DDP rank reseeded with rank 0's seed (docs promise seed + rank)",
               "dsd_components/handlers.py", "epoch_seed(self.seed, engine.state.epoch, self.rank)",
               "epoch_seed(self.seed, engine.state.epoch, 0)", ("tests/unit/test_checkpointer.py",),
               integration=("tests/integration/test_multi_gpu.py",)),
    PlantedBug("mmwhs_fold_past_the_cases", "MMWHS fold 3 of 6 cases gives an empty validation set, no error",
               "dsd_components/data.py", "    if fold not in valid:", "    if not 0 <= fold < k:",
               ("tests/unit/test_data.py",)),
    PlantedBug("checkpoint_tmp_prefix_changed", "atomic_save's temporaries no longer match the clean-up pattern",
               "dsd_components/export.py", 'prefix=f".{path.name}."', 'prefix=f"{path.name}."',
               ("tests/unit/test_checkpointer.py",)),
    PlantedBug("zip_dated_now", "the package zip takes the files' dates instead of a fixed one",
               "dsd_tools/zoo/package.py", "date_time=ZIP_DATE", "date_time=time.localtime()[:6]",
               ("tests/unit/test_package_zip.py",), integration=("tests/integration/test_package.py",)),
    PlantedBug("tap_check_removed", "the head-size check that names the tap is gone",
               "dsd_components/network.py", "DSD head on {tap.path!r} produced", "head produced",
               ("tests/unit/test_network.py",)),
    PlantedBug("teacher_swapped", "the shallowest encoder taken as the teacher instead of the deepest",
               "dsd_components/fused_loss.py", "return deepest if teacher == \"deepest\" else shallowest",
               "return shallowest if teacher == \"deepest\" else deepest",
               ("tests/unit/test_loss.py", "tests/unit/test_fused_loss.py")),
)


def _copy(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", ".venv", "mutants", "demo", "dist", "studies", "mlruns", "__pycache__",
                                    "models", "eval", "logs", ".pytest_cache")
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def _apply(tree: Path, bug: PlantedBug) -> None:
    path = tree / bug.path
    text = path.read_text()
    if text.count(bug.old) != 1:
        raise SystemExit(f"{bug.name}: {bug.path} holds {text.count(bug.old)} copies of the text to edit; "
                         "update the edit in tests/planted/run_planted_bugs.py")
    if "time.localtime" in bug.new and "\nimport time\n" not in text:
        text = text.replace("from __future__ import annotations\n", "from __future__ import annotations\nimport time\n")
    path.write_text(text.replace(bug.old, bug.new))
    if bug.regenerate:
        subprocess.run([sys.executable, "-c", "from dsd_tools.bundlegen.cli import main; main()"], cwd=tree,
                       check=True, capture_output=True)


def run(bug: PlantedBug, integration: bool) -> tuple[bool, float, str]:
    """(caught, seconds, the first failing test) for one planted bug."""
    with tempfile.TemporaryDirectory(prefix=f"planted_{bug.name}_") as tmp:
        tree = _copy(Path(tmp) / "repo")
        _apply(tree, bug)
        tests = bug.tests + (bug.integration if integration else ())
        t0 = time.perf_counter()
        # `python -m pytest` imports from the working directory first: the copy's packages shadow the editable install
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-rf", "-p", "no:cacheprovider", *tests]
        res = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
        failed = [ln for ln in res.stdout.splitlines() if ln.startswith("FAILED ")]
        if res.returncode not in (0, 1):  # 2+: collection error or interrupted: the edit broke more than behaviour
            raise SystemExit(f"{bug.name}: pytest exited {res.returncode} (not a test failure):\n{res.stdout[-2000:]}")
        return res.returncode == 1, time.perf_counter() - t0, failed[0] if failed else "no test failed"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="bugs to plant (default: all): " + ", ".join(b.name for b in BUGS))
    ap.add_argument("--with-integration", action="store_true", help="also run each bug's integration tests")
    args = ap.parse_args(argv)
    unknown = set(args.names) - {b.name for b in BUGS}
    if unknown:
        ap.error(f"unknown bug(s) {sorted(unknown)}")
    missed = 0
    for bug in BUGS:
        if args.names and bug.name not in args.names:
            continue
        caught, seconds, last = run(bug, args.with_integration)
        missed += not caught
        print(f"{'caught' if caught else 'MISSED'}  {bug.name:32s} {seconds:6.1f} s  {bug.what}\n        {last}",
              flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
