"""The one parser of config overrides the tools pass to bundles (``--net``, ``--net_override``, ``--overrides``)."""

from __future__ import annotations

from typing import Any

from .cli import parse_json_arg

__all__ = ["network_overrides", "bundle_overrides"]


def network_overrides(net: dict[str, Any] | str | None) -> dict[str, Any]:
    """``{"filters": [...]}`` -> ``{"network_def#filters": [...]}`` (keys already carrying ``#`` are kept)."""
    return {(k if "#" in k else f"network_def#{k}"): v for k, v in parse_json_arg(net, "net").items()}


def bundle_overrides(over: dict[str, Any] | str | None, what: str = "overrides") -> dict[str, Any]:
    """Config overrides ``{id: value}`` with ``patch_size`` as a list of 3, and the metadata's input and output
    ``spatial_shape`` following a changed ``patch_size`` (UNETR's ``img_size`` is tied to it)."""
    out = parse_json_arg(over, what)
    if isinstance(out.get("patch_size"), (int, float)):
        out["patch_size"] = [int(out["patch_size"])] * 3
    if "patch_size" in out:
        for io in ("inputs#image", "outputs#pred"):
            out.setdefault(f"_meta_#network_data_format#{io}#spatial_shape", out["patch_size"])
    return out
