"""BibTeX of what a bundle rests on: the DSD paper, MONAI, its dataset and its backbone.

The bundle README's *Citation Info* and *References* sections (the model zoo's README template) are written from
these entries, so every bundle cites the same text. Only bibliographic facts that are certain are given (no guessed
volume, page or DOI fields).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Citation", "DSD_PAPER", "MONAI", "DATASET_CITATIONS", "NETWORK_CITATIONS", "citations_for"]


@dataclass(frozen=True)
class Citation:
    """One reference: a BibTeX entry and the one-line form the README's References list shows."""

    key: str
    bibtex: str
    text: str


DSD_PAPER = Citation("banerjee2025dsd", """@article{banerjee2025dsd,
  title   = {Dual Self-Distillation of {U}-shaped Networks for {3D} Medical Image Segmentation},
  author  = {Banerjee, Soumyanil and Dong, Ming and Glide-Hurst, Carri},
  journal = {IEEE Transactions on Biomedical Engineering},
  year    = {2025},
  note    = {Preliminary version at IEEE ISBI 2024}
}""", "Banerjee S, Dong M, Glide-Hurst C. Dual Self-Distillation of U-shaped Networks for 3D Medical Image "
      "Segmentation. IEEE Transactions on Biomedical Engineering, 2025 (ISBI 2024 preliminary version).")

MONAI = Citation("cardoso2022monai", """@article{cardoso2022monai,
  title   = {{MONAI}: An open-source framework for deep learning in healthcare},
  author  = {Cardoso, M. Jorge and Li, Wenqi and Brown, Richard and others},
  journal = {arXiv preprint arXiv:2211.02701},
  year    = {2022}
}""", "Cardoso MJ et al. MONAI: An open-source framework for deep learning in healthcare. arXiv:2211.02701, 2022.")

_MSD = Citation("antonelli2022msd", """@article{antonelli2022msd,
  title   = {The Medical Segmentation Decathlon},
  author  = {Antonelli, Michela and Reinke, Annika and Bakas, Spyridon and others},
  journal = {Nature Communications},
  volume  = {13},
  pages   = {4128},
  year    = {2022}
}""", "Antonelli M et al. The Medical Segmentation Decathlon. Nature Communications 13, 4128, 2022.")

_BRATS = (
    Citation("menze2015brats", """@article{menze2015brats,
  title   = {The Multimodal Brain Tumor Image Segmentation Benchmark ({BRATS})},
  author  = {Menze, Bjoern H. and Jakab, Andras and Bauer, Stefan and others},
  journal = {IEEE Transactions on Medical Imaging},
  volume  = {34},
  number  = {10},
  pages   = {1993--2024},
  year    = {2015}
}""", "Menze BH et al. The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS). IEEE TMI 34(10), 2015."),
    Citation("bakas2017brats", """@article{bakas2017brats,
  title   = {Advancing The Cancer Genome Atlas glioma {MRI} collections with expert segmentation labels and
             radiomic features},
  author  = {Bakas, Spyridon and Akbari, Hamed and Sotiras, Aristeidis and others},
  journal = {Scientific Data},
  volume  = {4},
  pages   = {170117},
  year    = {2017}
}""", "Bakas S et al. Advancing The Cancer Genome Atlas glioma MRI collections with expert segmentation labels and "
      "radiomic features. Scientific Data 4, 170117, 2017."),
)

_MMWHS = (
    Citation("zhuang2016mmwhs", """@article{zhuang2016mmwhs,
  title   = {Multi-scale patch and multi-modality atlases for whole heart segmentation of {MRI}},
  author  = {Zhuang, Xiahai and Shen, Juan},
  journal = {Medical Image Analysis},
  volume  = {31},
  pages   = {77--87},
  year    = {2016}
}""", "Zhuang X, Shen J. Multi-scale patch and multi-modality atlases for whole heart segmentation of MRI. Medical "
      "Image Analysis 31, 2016."),
    Citation("zhuang2019mmwhs", """@article{zhuang2019mmwhs,
  title   = {Evaluation of algorithms for multi-modality whole heart segmentation: an open-access grand challenge},
  author  = {Zhuang, Xiahai and Li, Lei and Payer, Christian and others},
  journal = {Medical Image Analysis},
  volume  = {58},
  pages   = {101537},
  year    = {2019}
}""", "Zhuang X et al. Evaluation of algorithms for multi-modality whole heart segmentation: an open-access grand "
      "challenge. Medical Image Analysis 58, 101537, 2019."),
)

DATASET_CITATIONS: dict[str, tuple[Citation, ...]] = {
    "hippocampus": (_MSD,),
    "brats": (_MSD, *_BRATS),
    "mmwhs": _MMWHS,
}

NETWORK_CITATIONS: dict[str, Citation] = {
    "UNETR": Citation("hatamizadeh2022unetr", """@inproceedings{hatamizadeh2022unetr,
  title     = {{UNETR}: Transformers for {3D} Medical Image Segmentation},
  author    = {Hatamizadeh, Ali and Tang, Yucheng and Nath, Vishwesh and others},
  booktitle = {IEEE/CVF Winter Conference on Applications of Computer Vision (WACV)},
  year      = {2022}
}""", "Hatamizadeh A et al. UNETR: Transformers for 3D Medical Image Segmentation. WACV 2022."),
    "DynUNet": Citation("isensee2021nnunet", """@article{isensee2021nnunet,
  title   = {nn{U}-{N}et: a self-configuring method for deep learning-based biomedical image segmentation},
  author  = {Isensee, Fabian and Jaeger, Paul F. and Kohl, Simon A. A. and Petersen, Jens and Maier-Hein, Klaus H.},
  journal = {Nature Methods},
  volume  = {18},
  number  = {2},
  pages   = {203--211},
  year    = {2021}
}""", "Isensee F et al. nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation. "
      "Nature Methods 18(2), 2021."),
    "SwinUNETR": Citation("hatamizadeh2022swinunetr", """@inproceedings{hatamizadeh2022swinunetr,
  title     = {Swin {UNETR}: Swin Transformers for Semantic Segmentation of Brain Tumors in {MRI} Images},
  author    = {Hatamizadeh, Ali and Nath, Vishwesh and Tang, Yucheng and Yang, Dong and Roth, Holger R. and
               Xu, Daguang},
  booktitle = {Brainlesion: Glioma, Multiple Sclerosis, Stroke and Traumatic Brain Injuries (BrainLes 2021)},
  year      = {2022}
}""", "Hatamizadeh A et al. Swin UNETR: Swin Transformers for Semantic Segmentation of Brain Tumors in MRI Images. "
      "BrainLes 2021 (MICCAI workshop), 2022."),
    "VNet": Citation("milletari2016vnet", """@inproceedings{milletari2016vnet,
  title     = {{V-Net}: Fully Convolutional Neural Networks for Volumetric Medical Image Segmentation},
  author    = {Milletari, Fausto and Navab, Nassir and Ahmadi, Seyed-Ahmad},
  booktitle = {Fourth International Conference on 3D Vision (3DV)},
  year      = {2016}
}""", "Milletari F, Navab N, Ahmadi SA. V-Net: Fully Convolutional Neural Networks for Volumetric Medical Image "
      "Segmentation. 3DV 2016."),
}


def citations_for(dataset: str, network_class: str) -> list[Citation]:
    """The DSD paper, MONAI, the backbone's paper and the dataset's papers, in that order (known ones only)."""
    out = [DSD_PAPER, MONAI]
    if network_class in NETWORK_CITATIONS:
        out.append(NETWORK_CITATIONS[network_class])
    out += list(DATASET_CITATIONS.get(dataset, ()))
    return out
