"""``dsd-generate``: (re)write the nine paper bundles from :mod:`dsd_tools.paper`, or check they are up to date.

    dsd-generate                 # write bundles/*/configs, docs, LICENSE, large_files.yml and docs/REPRODUCING.md
    dsd-generate --check true    # exit 1 if a committed file differs (the test suite runs this check)

Edit the paper table or the writer, regenerate, commit both.
"""

from __future__ import annotations

from pathlib import Path

from ..cli import run_cli
from ..paths import BUNDLES_DIR, REPO_ROOT
from . import paper_bundle_specs, stale_files, write_bundle
from .reproducing import reproducing_md

REPRODUCING = REPO_ROOT / "docs" / "REPRODUCING.md"

__all__ = ["generate", "main"]


def generate(check: bool = False, bundles_dir: str = str(BUNDLES_DIR)) -> None:
    """Write the nine paper bundles under ``bundles_dir``, or with ``--check true`` list the files that would change
    and exit 1.

    Args:
        check: only compare; exit 1 when a file is stale.
        bundles_dir: where the bundle folders live (default: the repository's bundles/).
    """
    specs = paper_bundle_specs()
    if check:
        stale = stale_files(specs, bundles_dir)
        if not REPRODUCING.is_file() or REPRODUCING.read_text() != reproducing_md():
            stale.append(str(REPRODUCING))
        for s in stale:
            print(f"stale: {s}")
        if stale:
            print("Run: dsd-generate")
            raise SystemExit(1)
        print(f"{len(specs)} bundles up to date")
        return
    for spec in specs:
        write_bundle(spec, Path(bundles_dir))
    REPRODUCING.write_text(reproducing_md())
    print(f"wrote {len(specs)} bundles under {bundles_dir} and {REPRODUCING}")


def main() -> None:
    run_cli(generate)
