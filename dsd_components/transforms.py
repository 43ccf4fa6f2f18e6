"""Transforms MONAI does not ship."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["LabelRegionsd"]


class LabelRegionsd(MapTransform):
    """Turn a 1-channel label map into one binary channel per *region*, a union of label values.

    Used for the standard BraTS regions in MSD Task01 label values (1 edema, 2 non-enhancing tumour, 3 enhancing
    tumour): ``{"WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}``; MONAI's ``ConvertToMultiChannelBasedOnBratsClassesd``
    assumes the challenge's values (1, 2, 4) instead. The result goes to ``<key><suffix>``, so the per-label maps stay
    and both can be scored in one evaluation.

    Shapes: ``(1, *spatial)`` integer labels -> ``(len(regions), *spatial)`` float32 in {0, 1}.
    """

    def __init__(self, keys: KeysCollection, regions: Mapping[str, Sequence[int]], suffix: str = "_regions",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if not regions:
            raise ValueError("regions: give at least one {name: [label values]}")
        self.regions = {str(k): [int(v) for v in vals] for k, vals in regions.items()}
        self.suffix = suffix

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[key]
            if label.shape[0] != 1:
                raise ValueError(f"{key}: expected a 1-channel label map, got shape {tuple(label.shape)}")
            channels = [torch.isin(label[0], torch.tensor(v, device=label.device)) for v in self.regions.values()]
            d[f"{key}{self.suffix}"] = torch.stack(channels).to(torch.float32)
        return d
