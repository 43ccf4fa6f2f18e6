"""Plan a study: every run with its folder, overrides and id; nothing is run or written.

Every run trains (``train.json``) then evaluates (``evaluate.json``) a private copy of the bundle's configs inside its
own folder, so the repository's bundles are never written to::

    <out_dir>/runs/<bundle>/<setting>-fold<k>-seed<s>-<hash>/
        bundle/configs/*.json     the configs the run used (copied from the bundle)
        bundle/models/            model.pt (best backbone); runs/<time>/ latest.pt (resume), run.json, config.json
        bundle/logs/              TensorBoard events (train_loss per iteration, val_mean_dice per validation)
        train_args.json           ``python -m monai.bundle run --args_file train_args.json`` reproduces training
        eval_args.json            ... and evaluation (per_case_metrics.csv / summary.csv in eval/)
        train.log, eval.log
        done.json                 written last: the run is finished and is skipped next time

The run folder's hash covers the bundle, every override, the fold, the seed and the evaluation split, so runs are
shared between studies that ask for the same thing (the ``dsd`` run of ``baseline_vs_dsd`` is the ``dsd`` run of
``ablation``), and changing ``--num_epochs`` or a network override starts new runs instead of reusing stale ones.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsd_components.data import DatasetSpec, build_datalist
from dsd_components.errors import DatalistError

from ..cli import as_list as _as_list
from ..cli import parse_json_arg
from ..hashing import object_hash as _hash
from ..overrides import bundle_overrides, network_overrides
from ..paths import BUNDLES_DIR
from .definitions import STUDIES

__all__ = ["RunSpec", "plan_study", "bundle_configs", "bundle_dataset"]


@dataclass
class RunSpec:
    """One training + evaluation run."""

    bundle: str
    setting: str
    mode: str
    fold: int
    seed: int
    train_overrides: dict[str, Any]
    eval_overrides: dict[str, Any]
    run_dir: Path
    run_id: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def done_file(self) -> Path:
        return self.run_dir / "done.json"

    @property
    def done(self) -> bool:
        return self.done_file.is_file()




def bundle_configs(bundle: str) -> Path:
    """The configs folder of a bundle under the repository's bundles/.

    Raises:
        ValueError: unknown bundle (the message lists them).
    """
    path = BUNDLES_DIR / bundle / "configs"
    if not (path / "train.json").is_file():
        known = sorted(p.name for p in BUNDLES_DIR.iterdir() if (p / "configs" / "train.json").is_file())
        raise ValueError(f"unknown bundle {bundle!r}: use one of {', '.join(known)}")
    return path


def bundle_dataset(bundle: str) -> DatasetSpec:
    """The dataset facts a bundle trains with (its train.json ``dataset`` item)."""
    return DatasetSpec.from_config(json.loads((bundle_configs(bundle) / "train.json").read_text())["dataset"])


def _eval_keys(bundle: str) -> set[str]:
    """Top-level ids evaluation reads: evaluate.json is layered on train.json, so the run's DSD and training settings
    reach its evaluation too (and label the evaluation's MLflow run)."""
    keys = set()
    for name in ("train.json", "evaluate.json"):
        keys |= {k.lstrip("+").split("#", 1)[0] for k in json.loads((bundle_configs(bundle) / name).read_text())}
    return keys


def _num_folds(spec: DatasetSpec, dataset_dir: str | None, overrides: dict[str, Any]) -> int:
    """Folds of the dataset: cross-validated datasets (MMWHS; nnU-Net k-fold) have several, fewer when the data have
    fewer cases; fixed splits (MSD) have one."""
    if spec.split.kind == "holdout" or overrides.get("datalist"):
        return 1
    if not dataset_dir:
        return spec.split.num_folds
    for fold in range(spec.split.num_folds):
        try:
            build_datalist(spec, dataset_dir, fold=fold)
        except DatalistError:
            return max(fold, 1)
    return spec.split.num_folds


def plan_study(
    study: str,
    bundles: Sequence[str] | str,
    out_dir: str | os.PathLike,
    dataset_dir: str | None = None,
    settings: Sequence[str] | str | None = None,
    folds: Sequence[int] | int | str | None = None,
    seeds: Sequence[int] | int | str = (0,),
    eval_split: str = "validation",
    net: dict[str, Any] | str | None = None,
    small_net: dict[str, Any] | str | None = None,
    overrides: dict[str, Any] | str | None = None,
) -> list[RunSpec]:
    """Every run of a study, with its folder, overrides and id; nothing is run or written."""
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r}: use one of {', '.join(STUDIES)}")
    sdef = STUDIES[study]
    bundles = _as_list(bundles)
    if not bundles:
        raise ValueError("--bundles: give at least one bundle, e.g. --bundles mmwhs_nnunet_dsd")
    user = bundle_overrides({**network_overrides(net), **parse_json_arg(overrides, "overrides")})
    user = {k: v for k, v in user.items() if not k.startswith("_meta_#")}
    small = parse_json_arg(small_net, "small_net") if small_net not in (None, "") else None
    wanted = [str(s) for s in _as_list(settings)]
    seeds_l = [int(s) for s in _as_list(seeds)] or [0]
    out = Path(out_dir).resolve()
    runs: list[RunSpec] = []
    for bundle in bundles:
        dataset = bundle_dataset(bundle)
        ddir = dataset_dir if isinstance(dataset_dir, str) or dataset_dir is None else str(dataset_dir)
        all_settings = sdef.settings(bundle, small)
        names = [s.name for s in all_settings]
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise ValueError(f"--settings {', '.join(unknown)}: study {study!r} has {', '.join(names)}")
        chosen = [s for s in all_settings if not wanted or s.name in wanted]
        if folds is None or folds == "":
            fold_l = list(range(_num_folds(dataset, ddir, user))) if sdef.all_folds else [int(user.get("fold", 0))]
        else:
            fold_l = [int(f) for f in _as_list(folds)]
        if sdef.all_folds and dataset.split.kind == "holdout" and not user.get("datalist") and fold_l != [0]:
            raise ValueError(f"{bundle}: {dataset.name} has one fixed split (fold 0); cross-validation needs a "
                             "cross-validated dataset (MMWHS, nnU-Net k-fold) or a "
                             "--overrides '{\"datalist\": \"folds.json\"}' whose entries carry \"fold\" keys")
        eval_keys = _eval_keys(bundle)
        # fold- and seed-major order: a study stopped half-way has every setting of its first replicates
        for fold, seed, s in ((f, sd, s) for f in fold_l for sd in seeds_l for s in chosen):
            train = {**user, **s.overrides, "fold": fold, "seed": seed}
            if ddir:
                train["dataset_dir"] = str(Path(ddir).resolve())
            ev = {k: v for k, v in train.items()
                  if k.split("#", 1)[0] in eval_keys and k != "seed"}
            ev["eval_split"] = eval_split
            ident = {"bundle": bundle, "train": train, "eval": ev}
            h = _hash(ident)
            rid = f"{bundle}/{s.name}-fold{fold}-seed{seed}-{h}"
            if not (out / "runs" / rid / "done.json").is_file():
                # the same run finished under another study's label (capacity's large_dsd = cv's dsd)
                same = sorted((out / "runs" / bundle).glob(f"*-fold{fold}-seed{seed}-{h}/done.json"))
                if same:
                    rid = f"{bundle}/{same[0].parent.name}"
            runs.append(RunSpec(bundle, s.name, s.mode, fold, seed, train, ev, out / "runs" / rid, rid))
    return runs


