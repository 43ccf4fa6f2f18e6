"""Dataset-specific transforms MONAI does not ship."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["MSDBratsRegionsd", "MSD_BRATS_REGIONS"]

# Standard BraTS evaluation regions in MSD Task01 label values (1 edema, 2 non-enhancing tumour, 3 enhancing tumour).
# MONAI's ConvertToMultiChannelBasedOnBratsClassesd assumes the BraTS-challenge values (1, 2, 4) instead.
MSD_BRATS_REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)}


class MSDBratsRegionsd(MapTransform):
    """Turn an MSD BraTS label map (1 channel, values 0..3) into the 3 standard regions WT, TC, ET.

    The reference implementation trains on the raw MSD labels and reports classes 1-3; the usual BraTS numbers are
    region scores. Writing ``<key><suffix>`` keeps the per-label maps so both can be reported from one evaluation.
    """

    def __init__(self, keys: KeysCollection, suffix: str = "_regions", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.suffix = suffix

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[key]
            if label.shape[0] != 1:
                raise ValueError(f"{key}: expected a 1-channel label map, got shape {tuple(label.shape)}")
            regions = [torch.isin(label[0], torch.tensor(v, device=label.device)) for v in MSD_BRATS_REGIONS.values()]
            d[f"{key}{self.suffix}"] = torch.stack(regions).to(torch.float32)
        return d
