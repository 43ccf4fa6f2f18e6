"""Plan a DSD bundle for any MSD or nnU-Net v2 dataset, nnU-Net style (``dsd-new-bundle``).

:mod:`.fingerprint` (dataset.json + MONAI's DataAnalyzer) -> :mod:`.rules` (nnU-Net's planning rules, in our own
code) -> :mod:`.bundle` (a :class:`~dsd_tools.bundlegen.BundleSpec` for the one bundle writer).
"""
