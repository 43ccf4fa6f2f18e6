"""Performance benchmarks: DSD vs its bare backbone (training step, peak memory, inference) and the data pipeline.

    dsd-bench train     [--pairings all] [--size 32] [--batch 2] [--steps 5] [--tiny] [--device cpu]
    dsd-bench memory    [--pairings all] [--size 32] [--batch 2] [--steps 2] [--tiny]
    dsd-bench inference [--pairings all] [--size 32] [--repeats 5] [--tiny]
    dsd-bench data      [--bundles all] [--data_dir /tmp/dsd_bench_data] [--epochs 2]
    dsd-bench gpu       --out $OUT/gpu.json          (CUDA; < 4 min on one H200)
    dsd-bench gpu       --device cpu --tiny          (the same code path, testable on CPU)

Every subcommand prints one JSON document (and writes it to ``--out`` when given) that records the machine and the
command line. ``--pairings`` takes bundle names (``mmwhs_nnunet_dsd``) or backbone keys (``mmwhs_nnunet``), comma
separated, or ``all``; ``--size 0`` means the paper's patch size of that pairing.

What is compared, always on the same input and with the same initial weights:

* **DSD**: ``DSDNetwork(backbone, "dsd")`` trained with ``DSDLoss("dsd")`` (DiceCE + deep supervision + both KLs);
* **backbone**: the stock backbone trained with ``DSDLoss("basic")`` (MONAI's ``DiceCELoss``, computed by the fused
  loss unless ``--fused false``).

A training step is forward + loss + backward + AdamW step (what MONAI's ``SupervisedTrainer`` does per iteration).
The two networks are stepped alternately so that drift of a shared machine hits both alike; medians are reported.
Peak memory is ``torch.cuda.max_memory_allocated`` on CUDA, and on CPU the growth of the max RSS during the steps of a
fresh subprocess per (pairing, network) -- the CPU allocator has no peak counter.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from dsd_components import DSDLoss, DSDNetwork, DSDOutput
from dsd_components.export import backbone_state_dict

from .cli import run_cli
from .malloc import STEADY_MALLOC, steady_malloc_reexec
from .networks import TINY_OVERRIDES, backbone_config, build_backbone
from .paper import BACKBONES, DATASETS, PAIRINGS
from .paths import BUNDLES_DIR

BUNDLES = list(PAIRINGS)


def cases_per_epoch(dataset: str) -> int:
    """Training cases per epoch of the paper's split (MMWHS 16 of 20 per fold, BraTS 388, Hippocampus 170)."""
    split = DATASETS[dataset].split
    if split.kind == "blocks":
        return 20 - 20 // split.num_folds
    return split.reference_cases - split.test - split.validation


# --------------------------------------------------------------------------------------------- helpers
def pairing_info(name: str) -> dict[str, Any]:
    """Bundle name or backbone key -> backbone key, dataset, paper patch, patches per step, epochs (paper table)."""
    key = name[: -len("_dsd")] if name.endswith("_dsd") else name
    if key not in BACKBONES:
        raise KeyError(f"unknown pairing {name!r}; known: {', '.join(BUNDLES)}")
    bundle = f"{key}_dsd" if f"{key}_dsd" in PAIRINGS else None
    dataset = PAIRINGS[bundle].dataset if bundle else key.split("_")[0]
    facts = DATASETS[dataset]
    return {"key": key, "bundle": bundle, "dataset": dataset, "patch": facts.crop.patch,
            "batch": facts.crop.num_samples, "epochs": PAIRINGS[bundle].epochs if bundle else 300}


def _names(pairings: str | list | tuple) -> list[str]:
    if pairings in ("all", None, ""):
        return [b[: -len("_dsd")] for b in BUNDLES]
    if isinstance(pairings, str):
        pairings = [p for p in pairings.split(",") if p.strip()]
    return [pairing_info(str(p).strip())["key"] for p in pairings]


def _size(key: str, size: int) -> int:
    """``size`` (0: the paper's patch), raised to 64 for SwinUNETR (its 32x-downsampled bottleneck must have
    more than one voxel for instance norm)."""
    s = int(size) or pairing_info(key)["patch"]
    return max(s, 64) if BACKBONES[key].class_name == "SwinUNETR" else s


def build(key: str, size: int, tiny: bool = False) -> torch.nn.Module:
    """The pairing's stock backbone for cubic inputs of ``size`` (UNETR's ``img_size`` follows the size)."""
    cfg = backbone_config(key)
    cls = cfg["_target_"].rsplit(".", 1)[-1]
    over: dict[str, Any] = dict(TINY_OVERRIDES.get(cls, {})) if tiny else {}
    if "img_size" in cfg:
        over["img_size"] = [size] * 3
    if cls == "VNet":  # the bundle's VNet has dropout; keep it deterministic so both sides do the same work
        over.update(dropout_prob_down=0.0, dropout_prob_up=(0.0, 0.0))
    return build_backbone(key, **over)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
        "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "command": " ".join([Path(sys.argv[0]).name if sys.argv else "bench.py", *sys.argv[1:]]),
        "malloc_env": {k: os.environ.get(k) for k in STEADY_MALLOC},
    }
    try:
        import monai

        info["monai"] = monai.__version__
    except ImportError:  # pragma: no cover
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _now(device: torch.device) -> float:
    _sync(device)
    return time.perf_counter()


def _rss_bytes() -> int:
    with contextlib.suppress(OSError):
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return 0


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _emit(result: dict[str, Any], out: str | None) -> dict[str, Any]:
    text = json.dumps(result, indent=1, default=str)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    print(text)
    return result


def _setup(threads: int, device: str = "cpu") -> torch.device:
    """One benchmark command's torch thread count (0: torch's default) and device."""
    if threads:
        torch.set_num_threads(int(threads))
    return torch.device(device)


def _flag(value: Any) -> bool:
    """A boolean argument (the CLI parses them already; library callers may pass strings)."""
    from dsd_components.knobs import as_bool

    return as_bool(value, "flag")


def _r(x: float, nd: int = 4) -> float:
    return float(f"{x:.{nd}g}") if math.isfinite(x) else x


# --------------------------------------------------------------------------------------------- training step
class Trainee:
    """A network, its loss and optimizer, stepped exactly as SupervisedTrainer steps it (optionally with AMP)."""

    def __init__(self, net: torch.nn.Module, mode: str, device: torch.device, amp: bool = False,
                 fused: bool = True) -> None:
        self.net = net.to(device).train()
        self.loss = DSDLoss(mode, fused=fused)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=1e-4, weight_decay=1e-5)
        self.device, self.amp = device, amp
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp and device.type == "cuda")

    def _autocast(self):
        return torch.autocast(self.device.type, enabled=self.amp and self.device.type == "cuda")

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        self.opt.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.loss(self.net(x), y)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return float(loss.detach())

    def breakdown(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Seconds per phase of one step, each phase synchronised (so the sum exceeds a free-running step a bit)."""
        dev, t = self.device, {}
        net = self.net
        bb = net.backbone if isinstance(net, DSDNetwork) else net
        marks: dict[str, float] = {}
        h1 = bb.register_forward_pre_hook(lambda m, a: marks.__setitem__("bb0", _now(dev)))
        h2 = bb.register_forward_hook(lambda m, a, o: marks.__setitem__("bb1", _now(dev)))
        self.opt.zero_grad(set_to_none=True)
        try:
            with self._autocast():
                t0 = _now(dev)
                out = net(x)
                t1 = _now(dev)
                total = self.loss(out, y)  # every term of the mode (one autograd node when fused)
                t2 = _now(dev)
                t["loss_fwd"] = t2 - t1
        finally:
            h1.remove()
            h2.remove()
        t["backbone_fwd"] = marks["bb1"] - marks["bb0"]
        t["heads_fwd"] = (t1 - t0) - t["backbone_fwd"]
        t4 = _now(dev)
        self.scaler.scale(total).backward()
        t5 = _now(dev)
        self.scaler.step(self.opt)
        self.scaler.update()
        t6 = _now(dev)
        t["backward"], t["optimizer"] = t5 - t4, t6 - t5
        return t


def saved_activations(tr: Trainee, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """MiB that autograd keeps for backward (distinct storages, parameters excluded), per phase of forward + loss.

    Deterministic and device-independent: the activation part of a training step's peak memory.
    """
    params = {p.untyped_storage().data_ptr() for p in tr.net.parameters()}
    seen: dict[int, int] = {}
    phase: dict[str, float] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        with contextlib.suppress(Exception):
            st = t.untyped_storage()
            if st.data_ptr() not in params:
                seen.setdefault(st.data_ptr(), st.nbytes())
        return t

    def mark(name: str) -> None:
        phase[name] = sum(seen.values()) / 2**20 - sum(phase.values())

    net = tr.net
    bb = net.backbone if isinstance(net, DSDNetwork) else net
    h = bb.register_forward_hook(lambda m, a, o: mark("backbone"))
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), tr._autocast():
            out = net(x)
            mark("heads")
            tr.loss(out, y)
            mark("loss")
    finally:
        h.remove()
    res = {k: _r(v) for k, v in phase.items() if v or k in ("backbone", "loss")}
    res["total"] = _r(sum(seen.values()) / 2**20)
    return res


def component_costs(dsd: Trainee, bare: Trainee, x: torch.Tensor, y: torch.Tensor, repeats: int) -> dict[str, Any]:
    """Seconds (min over ``repeats``) of what DSD adds to a step, each part alone on stored inputs, and the backbone
    step: heads forward + backward, the DSD loss forward + backward vs the plain DiceCE, the backbone step.

    Why: on a shared machine whole-step ratios scatter by +-5 % run to run, as much as the overhead itself; a
    min over many repeats of each small part is stable, and ``1 + (heads + loss_dsd - loss_basic) / backbone step``
    predicts the step ratio without that noise (the optimizer's few extra head parameters are left out).
    """
    dev, net = dsd.device, dsd.net

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(max(1, repeats)):
            t0 = _now(dev)
            fn()
            times.append(_now(dev) - t0)
        return min(times)

    with torch.no_grad(), dsd._autocast():
        main, feats = net.backbone_with_features(x)
        enc, dec = net.run_heads(feats, main.shape[2:])
    size = main.shape[2:]

    def heads() -> None:
        fs = {k: v.detach().requires_grad_() for k, v in feats.items()}
        with dsd._autocast():
            e, d = net.run_heads(fs, size)
        torch.autograd.backward([o.float().sum() for o in (*e, *d)])

    def loss(trainee: Trainee, with_heads: bool):
        def fn() -> None:
            m = main.detach().requires_grad_()
            out = DSDOutput(m, tuple(t.detach().requires_grad_() for t in enc),
                            tuple(t.detach().requires_grad_() for t in dec)) if with_heads else m
            with trainee._autocast():
                value = trainee.loss(out, y)
            value.backward()
        return fn

    res = {"heads_fwd_bwd": best(heads), "loss_fwd_bwd_dsd": best(loss(dsd, True)),
           "loss_fwd_bwd_basic": best(loss(bare, False)), "backbone_step": best(lambda: bare.step(x, y))}
    res["dsd_step"] = best(lambda: dsd.step(x, y))
    model = 1 + (res["heads_fwd_bwd"] + res["loss_fwd_bwd_dsd"] - res["loss_fwd_bwd_basic"]) / res["backbone_step"]
    return {"components_s": {k: _r(v) for k, v in res.items()}, "overhead_model_ratio": _r(model),
            "step_ratio_of_mins": _r(res["dsd_step"] / res["backbone_step"])}


def _pair(key: str, size: int, tiny: bool, device: torch.device, amp: bool = False,
          fused: bool = True) -> tuple[Trainee, Trainee]:
    torch.manual_seed(0)
    dsd_net = DSDNetwork(build(key, size, tiny), mode="dsd")
    bare = copy.deepcopy(dsd_net.backbone)
    for m in bare.modules():  # a deepcopy keeps DSD's (inactive) tap hooks; the bare backbone must have none
        m._forward_hooks.clear()
        m._forward_pre_hooks.clear()
    return Trainee(dsd_net, "dsd", device, amp, fused), Trainee(bare, "basic", device, amp, fused)


def _batch(net: torch.nn.Module, key: str, size: int, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    kwargs = BACKBONES[key].kwargs
    in_ch, classes = kwargs.get("in_channels", 1), kwargs.get("out_channels", 2)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, in_ch, size, size, size, generator=g).to(device)
    y = torch.randint(0, classes, (batch, 1, size, size, size), generator=g).to(device)
    return x, y


def time_pair(key: str, size: int, batch: int, steps: int, warmup: int, tiny: bool, device: torch.device,
              amp: bool = False, breakdown: bool = True, fused: bool = True) -> dict[str, Any]:
    dsd, bare = _pair(key, size, tiny, device, amp, fused)
    x, y = _batch(dsd.net, key, size, batch, device)
    for _ in range(warmup):
        dsd.step(x, y)
        bare.step(x, y)
    td, tb, cd, cb = [], [], [], []
    for i in range(steps):  # alternate, and alternate who goes first
        order = (("d", dsd), ("b", bare)) if i % 2 == 0 else (("b", bare), ("d", dsd))
        for tag, tr in order:
            t0, c0 = _now(device), time.process_time()
            tr.step(x, y)
            (td if tag == "d" else tb).append(_now(device) - t0)
            (cd if tag == "d" else cb).append(time.process_time() - c0)
    med = statistics.median
    res: dict[str, Any] = {
        "pairing": key, "size": size, "batch": batch, "amp": amp, "tiny": tiny, "steps": steps, "fused_loss": fused,
        "dsd_step_s": _r(med(td)), "backbone_step_s": _r(med(tb)), "step_ratio": _r(med(td) / med(tb)),
        "step_ratio_min": _r(min(td) / min(tb)),
        "params": {"backbone": sum(p.numel() for p in bare.net.parameters()),
                   "dsd": sum(p.numel() for p in dsd.net.parameters())},
    }
    if device.type == "cpu":  # CPU time of this process: robust to other jobs on a shared machine
        res.update(dsd_step_cpu_s=_r(med(cd)), backbone_step_cpu_s=_r(med(cb)), step_cpu_ratio=_r(med(cd) / med(cb)))
    res.update(component_costs(dsd, bare, x, y, repeats=max(3, steps)))
    sd, sb = saved_activations(dsd, x, y), saved_activations(bare, x, y)
    res["saved_activations_MiB"] = {"dsd": sd, "backbone": sb, "ratio": _r(sd["total"] / sb["total"])}
    if breakdown:
        bd_d = [dsd.breakdown(x, y) for _ in range(max(1, min(3, steps)))]
        bd_b = [bare.breakdown(x, y) for _ in range(max(1, min(3, steps)))]
        med = lambda rows: {k: _r(statistics.median(r[k] for r in rows)) for k in rows[0]}  # noqa: E731
        res["breakdown_dsd_s"], res["breakdown_backbone_s"] = med(bd_d), med(bd_b)
    return res


def train(pairings: str = "all", size: int = 32, batch: int = 2, steps: int = 5, warmup: int = 1,
          tiny: bool = False, device: str = "cpu", amp: bool = False, threads: int = 0, fused: bool = True,
          out: str | None = None):
    """Median training-step time, DSD vs bare backbone, with a per-phase breakdown.

    ``--batch 0`` takes each pairing's patches per step from its bundle; ``--fused false`` composes the loss from
    MONAI's DiceCELoss instead of the fused autograd node (both sides alike), to measure what fusing buys.
    """
    dev = _setup(threads, device)
    rows = []
    for key in _names(pairings):
        s = _size(key, size)
        b = int(batch) or pairing_info(key)["batch"]
        rows.append(time_pair(key, s, b, int(steps), int(warmup), _flag(tiny), dev, _flag(amp), fused=_flag(fused)))
        print(f"# {key} {s}^3 x{b}: DSD {rows[-1]['dsd_step_s']} s, backbone {rows[-1]['backbone_step_s']} s, "
              f"ratio {rows[-1]['step_ratio']}", file=sys.stderr)
    return _emit({"benchmark": "train", "machine": machine(), "results": rows}, out)


# --------------------------------------------------------------------------------------------- peak memory
def _mem_worker(key: str, which: str, size: int, batch: int, steps: int, tiny: bool, device: str,
                fused: bool = True) -> dict[str, Any]:
    dev = torch.device(device)
    torch.manual_seed(0)  # build only the measured network, so set-up never holds two models
    tr = Trainee(DSDNetwork(build(key, size, tiny), mode="dsd"), "dsd", dev, fused=fused) if which == "dsd" else \
        Trainee(build(key, size, tiny), "basic", dev, fused=fused)
    x, y = _batch(tr.net, key, size, batch, dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        base = _rss_bytes()
    for _ in range(steps):
        tr.step(x, y)
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else _maxrss_bytes()
    return {"which": which, "base_bytes": base, "peak_bytes": peak, "step_peak_bytes": peak - base}


def _mem_subprocess(key: str, which: str, size: int, batch: int, steps: int, tiny: bool, device: str,
                    threads: int, fused: bool = True) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "dsd_tools.bench", "_mem", key, which, f"--size={size}", f"--batch={batch}",
           f"--steps={steps}", f"--device={device}", f"--threads={threads}", f"--fused={fused}"]
    cmd += ["--tiny"] if tiny else []
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"memory worker failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def memory(pairings: str = "all", size: int = 32, batch: int = 2, steps: int = 2, tiny: bool = False,
           device: str = "cpu", threads: int = 2, fused: bool = True, out: str | None = None):
    """Peak memory of one training step, DSD vs bare backbone, each in a fresh subprocess (``--batch 0``: the
    pairing's own patches per step)."""
    rows = []
    for key in _names(pairings):
        batch_k = int(batch) or pairing_info(key)["batch"]
        s = _size(key, size)
        d = _mem_subprocess(key, "dsd", s, batch_k, int(steps), _flag(tiny), device, int(threads), _flag(fused))
        b = _mem_subprocess(key, "backbone", s, batch_k, int(steps), _flag(tiny), device, int(threads), _flag(fused))
        rows.append({
            "pairing": key, "size": s, "batch": batch_k, "tiny": _flag(tiny), "fused_loss": _flag(fused),
            "metric": "cuda max_memory_allocated" if device.startswith("cuda") else "max RSS of a fresh process",
            "dsd_peak_MiB": _r(d["peak_bytes"] / 2**20), "backbone_peak_MiB": _r(b["peak_bytes"] / 2**20),
            "peak_ratio": _r(d["peak_bytes"] / b["peak_bytes"]),
            "dsd_step_growth_MiB": _r(d["step_peak_bytes"] / 2**20),
            "backbone_step_growth_MiB": _r(b["step_peak_bytes"] / 2**20),
            "step_growth_ratio": _r(d["step_peak_bytes"] / max(b["step_peak_bytes"], 1)),
        })
        print(f"# {key} {s}^3 x{batch_k}: peak DSD {rows[-1]['dsd_peak_MiB']} MiB, backbone "
              f"{rows[-1]['backbone_peak_MiB']} MiB, ratio {rows[-1]['peak_ratio']}", file=sys.stderr)
    return _emit({"benchmark": "memory", "machine": machine(), "results": rows}, out)


# --------------------------------------------------------------------------------------------- inference
def infer_pair(key: str, size: int, repeats: int, tiny: bool, device: torch.device, amp: bool = False,
               volume_factor: float = 1.5) -> dict[str, Any]:
    from monai.inferers import SlidingWindowInferer

    torch.manual_seed(0)
    dsd = DSDNetwork(build(key, size, tiny), mode="dsd").to(device)
    # the deployed model: a fresh stock backbone loaded with the exported (backbone-only) state dict
    deployed = build(key, size, tiny).to(device)
    exported = backbone_state_dict(dsd.state_dict())
    deployed.load_state_dict(exported, strict=True)
    fresh = build(key, size, tiny).state_dict()
    same_keys = list(exported) == list(fresh) and all(exported[k].shape == fresh[k].shape for k in fresh)
    dsd.eval()
    deployed.eval()
    cfg = BACKBONES[key].kwargs
    vol = int(math.ceil(size * volume_factor))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, cfg.get("in_channels", 1), vol, vol, vol, generator=g).to(device)
    inferer = SlidingWindowInferer(roi_size=[size] * 3, sw_batch_size=4, overlap=0.25)
    ctx = torch.autocast(device.type, enabled=amp and device.type == "cuda")
    with torch.no_grad(), ctx:
        y_d, y_b = inferer(x, dsd), inferer(x, deployed)  # warm-up, and the outputs must agree
        td, tb = [], []
        for i in range(repeats):
            for tag, net in ((("d", dsd), ("b", deployed)) if i % 2 == 0 else (("b", deployed), ("d", dsd))):
                t0 = _now(device)
                inferer(x, net)
                (td if tag == "d" else tb).append(_now(device) - t0)
    n_dep = sum(p.numel() for p in deployed.parameters())
    return {
        "pairing": key, "roi": size, "volume": vol, "amp": amp, "tiny": tiny, "repeats": repeats,
        "dsd_eval_s": _r(statistics.median(td)), "backbone_s": _r(statistics.median(tb)),
        "ratio": _r(statistics.median(td) / statistics.median(tb)),
        "max_abs_output_diff": float((y_d.float() - y_b.float()).abs().max()),
        "params_deployed": n_dep, "params_backbone": sum(p.numel() for p in dsd.backbone.parameters()),
        "params_dsd_training": sum(p.numel() for p in dsd.parameters()),
        "deployed_state_dict_equals_backbone": bool(same_keys and len(exported) == len(fresh)),
    }


def inference(pairings: str = "all", size: int = 32, repeats: int = 5, tiny: bool = False, device: str = "cpu",
              amp: bool = False, threads: int = 0, out: str | None = None):
    """Sliding-window inference: DSDNetwork(...).eval() vs the deployed stock backbone; parameter counts."""
    dev = _setup(threads, device)
    rows = []
    for key in _names(pairings):
        s = _size(key, size)
        rows.append(infer_pair(key, s, int(repeats), _flag(tiny), dev, _flag(amp)))
        print(f"# {key}: inference ratio {rows[-1]['ratio']}", file=sys.stderr)
    return _emit({"benchmark": "inference", "machine": machine(), "results": rows}, out)


# --------------------------------------------------------------------------------------------- data pipeline
# Demo volumes sized like the real data after loading (MMWHS CT ~0.8 mm in-plane resampled to 1.5x1.5x2 mm,
# BraTS 240x240x155, Hippocampus ~35x50x35), so cache and transform costs are realistic.
REAL_SIZE = {k: d.real_size for k, d in DATASETS.items()}
# MMWHS small volumes: after Spacingd to 1.5 mm they are ~36 voxels a side, wide enough for the bundle's reflect
# padding to its 96^3 patch (torch needs each side's pad narrower than the image: size > 96 / 3).
SMALL_SIZE = {"mmwhs": (72, 72, 48), "brats": (40, 40, 40), "hippocampus": (32, 40, 32)}


def _demo(dataset: str, root: Path, num_cases: int, size: tuple[int, ...]) -> Path:
    from .demo_data import make_demo_data

    d = root / f"{dataset}_{'x'.join(map(str, size))}_{num_cases}"
    if not (d / ".complete").exists():
        make_demo_data(dataset, str(d), num_cases=num_cases, size=list(size))
        (d / ".complete").write_text("ok\n")
    return d


def _epoch(iterable) -> tuple[float, int, int]:
    t0, cases, patches = time.perf_counter(), 0, 0
    for item in iterable:
        cases += 1
        if isinstance(item, list):  # a Dataset item of RandCropByPosNegLabeld: a list of num_samples patches
            patches += len(item)
        else:  # a collated batch
            patches += int(item["image"].shape[0])
    return time.perf_counter() - t0, cases, patches


def bench_data_bundle(bundle: str, data_root: Path, num_cases: int, epochs: int, real_size: bool, workers: int,
                fgbg: bool = True) -> dict[str, Any]:
    from monai.bundle import ConfigParser
    from monai.data import CacheDataset, DataLoader, Dataset, ThreadDataLoader
    from monai.transforms import Compose, FgBgToIndicesd

    info = pairing_info(bundle)
    ds_name = info["dataset"]
    size = REAL_SIZE[ds_name] if real_size else SMALL_SIZE[ds_name]
    ddir = _demo(ds_name, data_root, num_cases, size)
    parser = ConfigParser()
    parser.read_config(str(BUNDLES_DIR / bundle / "configs" / "train.json"))
    parser.update({"bundle_root": str(BUNDLES_DIR / bundle), "dataset_dir": str(ddir)})
    files = parser.get_parsed_content("datalists")["training"]
    det = parser.get_parsed_content("train#deterministic_transforms")
    rnd = parser.get_parsed_content("train#random_transforms")
    full = Compose(det + rnd)
    row: dict[str, Any] = {"bundle": bundle, "dataset": ds_name, "volume": list(size), "cases": len(files),
                           "patch": info["patch"], "num_samples": info["batch"], "epochs": epochs}
    rate = lambda t, n: _r(n / t) if t > 0 else float("inf")  # noqa: E731

    # 1. plain Dataset: every epoch loads and preprocesses every case (single process)
    tt = [_epoch(Dataset(files, full)) for _ in range(epochs)]
    t, c, p = (sum(x[i] for x in tt) for i in range(3))
    row["dataset_cases_per_s"], row["dataset_patches_per_s"] = rate(t, c), rate(t, p)
    # 2. CacheDataset as the bundle builds it: fill once, then only the random transforms run per epoch
    t0 = time.perf_counter()
    cache = CacheDataset(files, full, cache_rate=1.0, num_workers=workers, copy_cache=False, progress=False)
    row["cache_fill_s"] = _r(time.perf_counter() - t0)
    tt = [_epoch(cache) for _ in range(epochs)]
    t, c, p = (sum(x[i] for x in tt) for i in range(3))
    row["cache_cases_per_s"], row["cache_patches_per_s"] = rate(t, c), rate(t, p)
    # 3. the same with the foreground/background voxel indices cached (RandCropByPosNegLabeld otherwise
    #    scans the whole label volume on every draw)
    if fgbg:
        crop = rnd[0]
        crop.fg_indices_key, crop.bg_indices_key = "fg_idx", "bg_idx"
        det2 = det + [FgBgToIndicesd(keys="label", fg_postfix="_fg", bg_postfix="_bg", image_key="image",
                                     image_threshold=0)]
        # FgBgToIndicesd writes label_fg / label_bg
        crop.fg_indices_key, crop.bg_indices_key = "label_fg", "label_bg"
        cache2 = CacheDataset(files, Compose(det2 + rnd), cache_rate=1.0, num_workers=workers, copy_cache=False,
                              progress=False)
        tt = [_epoch(cache2) for _ in range(epochs)]
        t, c, p = (sum(x[i] for x in tt) for i in range(3))
        row["cache_fgbg_cases_per_s"], row["cache_fgbg_patches_per_s"] = rate(t, c), rate(t, p)
        crop.fg_indices_key = crop.bg_indices_key = None
    # 4. loaders over the bundle's CacheDataset: DataLoader(num_workers) (workers restart every epoch) vs
    #    ThreadDataLoader (one background thread, no process start-up)
    for name, make in (
        (f"dataloader_w{workers}", lambda: DataLoader(cache, batch_size=1, shuffle=True, num_workers=workers)),
        ("dataloader_w0", lambda: DataLoader(cache, batch_size=1, shuffle=True, num_workers=0)),
        ("threaddataloader_w0", lambda: ThreadDataLoader(cache, batch_size=1, shuffle=True, num_workers=0)),
    ):
        loader = make()
        tt = [_epoch(loader) for _ in range(epochs)]
        t, c, p = (sum(x[i] for x in tt) for i in range(3))
        row[f"{name}_cases_per_s"], row[f"{name}_patches_per_s"] = rate(t, c), rate(t, p)
    return row


def data(bundles: str = "all", data_dir: str = "", num_cases: int = 6, epochs: int = 2, real_size: bool = True,
         workers: int = 2, fgbg: bool = True, threads: int = 0, out: str | None = None):
    """Training-transform throughput of each bundle: plain Dataset vs CacheDataset, and loader variants."""
    _setup(threads)
    root = Path(data_dir) if data_dir else Path(tempfile.gettempdir()) / "dsd_bench_data"
    names = BUNDLES if bundles in ("all", None, "") else [
        b if b.endswith("_dsd") else f"{b}_dsd" for b in (bundles.split(",") if isinstance(bundles, str) else bundles)]
    rows = []
    for b in names:
        rows.append(bench_data_bundle(b, root, int(num_cases), int(epochs), bool(real_size), int(workers), bool(fgbg)))
        print(f"# {b}: Dataset {rows[-1]['dataset_cases_per_s']} cases/s, CacheDataset "
              f"{rows[-1]['cache_cases_per_s']} cases/s", file=sys.stderr)
    return _emit({"benchmark": "data", "machine": machine(), "results": rows}, out)


# --------------------------------------------------------------------------------------------- GPU suite
GPU_PAIRINGS = ("mmwhs_nnunet", "brats_swinunetr")


def gpu(out: str | None = None, device: str = "cuda", tiny: bool = False, steps: int = 5, warmup: int = 3,
        budget_s: float = 150.0, pairings: str = ",".join(GPU_PAIRINGS), size: int = 0, batch: int = 0,
        data_bundle: str = "mmwhs_nnunet_dsd", data_cases: int = 4, data_budget_s: float = 60.0,
        data_dir: str = ""):
    """AMP vs fp32 and cudnn.benchmark on/off, DSD vs backbone step time and peak memory at the paper's patch
    sizes, sliding-window inference ratio, and epoch-time estimates of the paper's schedules.

    Stops starting new configurations once ``budget_s`` seconds have passed (the JSON says which were skipped);
    the partial JSON is rewritten to ``--out`` after every configuration.
    """
    t_start = time.perf_counter()
    dev = torch.device(device)
    result: dict[str, Any] = {"benchmark": "gpu", "machine": machine(), "train": [], "inference": [],
                              "epoch_estimates": [], "skipped": []}
    keys = _names(pairings)

    def left() -> float:
        return budget_s - (time.perf_counter() - t_start)

    def save() -> None:
        result["elapsed_s"] = _r(time.perf_counter() - t_start)
        if out:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(json.dumps(result, indent=1, default=str) + "\n")

    for key in keys:
        info = pairing_info(key)
        tiny_size = 64 if BACKBONES[key].class_name == "SwinUNETR" else 32
        s = int(size) or (tiny_size if tiny else info["patch"])
        b = int(batch) or (1 if tiny else info["batch"])
        # (amp, cudnn.benchmark, fused loss); the last row measures what the fused loss buys on this GPU
        for amp, bench, fused in ((True, True, True), (True, False, True), (False, True, True), (False, False, True),
                                  (True, True, False)):
            tag = f"{key} amp={amp} cudnn.benchmark={bench} fused_loss={fused}"
            if left() < 0:
                result["skipped"].append(tag)
                continue
            torch.backends.cudnn.benchmark = bench
            row = time_pair(key, s, b, int(steps), int(warmup), _flag(tiny), dev, amp, breakdown=(bench and amp),
                            fused=fused)
            row["cudnn_benchmark"] = bench
            for which in ("dsd", "backbone"):
                row[f"{which}_peak_MiB"] = _peak(key, s, b, _flag(tiny), dev, amp, which, fused)
            if row.get("dsd_peak_MiB") and row.get("backbone_peak_MiB"):
                row["peak_ratio"] = _r(row["dsd_peak_MiB"] / row["backbone_peak_MiB"])
            result["train"].append(row)
            print(f"# {tag}: DSD {row['dsd_step_s']} s, backbone {row['backbone_step_s']} s, ratio "
                  f"{row['step_ratio']}, peak ratio {row.get('peak_ratio')}", file=sys.stderr)
            save()
        if left() > 0:
            torch.backends.cudnn.benchmark = True
            result["inference"].append(infer_pair(key, s, 1 if tiny else 3, _flag(tiny), dev, amp=True))
            save()
        else:
            result["skipped"].append(f"{key} inference")
        # epoch estimate from the fastest measured DSD configuration of this pairing
        rows = [r for r in result["train"] if r["pairing"] == key]
        if rows:
            best = min(rows, key=lambda r: r["dsd_step_s"])
            cases = cases_per_epoch(info["dataset"])
            epoch_s = cases * best["dsd_step_s"]  # one iteration per case (batch 1 case x num_samples patches)
            result["epoch_estimates"].append({
                "pairing": key, "config": {"amp": best["amp"], "cudnn_benchmark": best["cudnn_benchmark"],
                                           "fused_loss": best["fused_loss"]},
                "cases_per_epoch": cases, "patches_per_step": b, "epochs": info["epochs"],
                "train_epoch_s": _r(epoch_s), "schedule_h": _r(epoch_s * info["epochs"] / 3600),
                "note": "training iterations only (no validation, no data-loader stalls); measured size "
                        f"{s}^3 x{b}" + (" with tiny networks" if tiny else ""),
            })
    torch.backends.cudnn.benchmark = False
    # the host CPUs' transform throughput for one bundle (real-sized demo volumes unless --tiny), against the
    # measured DSD step rate of that bundle: does the default loader keep the accelerator busy?
    if data_bundle and left() + data_budget_s > 0:  # the data pass may use data_budget_s past the budget
        root = Path(data_dir) if data_dir else Path(tempfile.gettempdir()) / "dsd_bench_data"
        row = bench_data_bundle(data_bundle, root, int(data_cases), 1, not tiny, 0 if tiny else 4, True)
        key = pairing_info(data_bundle)["key"]
        steps_rows = [r for r in result["train"] if r["pairing"] == key]
        if steps_rows:
            step_s = min(r["dsd_step_s"] for r in steps_rows)
            row["dsd_steps_per_s"] = _r(1 / step_s)
            row["loader_keeps_up"] = {k[: -len("_cases_per_s")]: bool(v >= 1 / step_s) for k, v in row.items()
                                      if k.endswith("_cases_per_s")}
        result["data"] = row
    elif data_bundle:
        result["skipped"].append(f"data {data_bundle}")
    save()
    return _emit(result, out)


def _peak(key: str, size: int, batch: int, tiny: bool, dev: torch.device, amp: bool, which: str,
          fused: bool = True) -> float | None:
    """Peak CUDA memory of two steps of one network (in-process: the allocator has a peak counter)."""
    if dev.type != "cuda":
        return None
    torch.cuda.empty_cache()
    dsd, bare = _pair(key, size, tiny, dev, amp, fused)
    tr = dsd if which == "dsd" else bare
    del dsd, bare
    x, y = _batch(tr.net, key, size, batch, dev)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        tr.step(x, y)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**20
    del tr, x, y
    torch.cuda.empty_cache()
    return _r(peak)


# --------------------------------------------------------------------------------------------- CLI
def _mem(key: str, which: str, size: int = 32, batch: int = 2, steps: int = 2, tiny: bool = False,
         device: str = "cpu", threads: int = 0, fused: bool = True):
    """Internal: one memory measurement in this (fresh) process; prints one JSON line."""
    _setup(threads)
    print(json.dumps(_mem_worker(key, which, int(size), int(batch), int(steps), _flag(tiny), device, _flag(fused))))


COMMANDS = {"train": train, "memory": memory, "inference": inference, "data": data, "gpu": gpu, "_mem": _mem}


def main() -> None:
    """``dsd-bench SUBCOMMAND``: each prints one JSON document (re-run first with a steady CPU allocator)."""
    steady_malloc_reexec("dsd_tools.bench", "DSD_BENCH_MALLOC")
    run_cli(COMMANDS)


if __name__ == "__main__":
    main()
