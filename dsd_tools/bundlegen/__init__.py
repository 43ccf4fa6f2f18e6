"""The bundle writer: one :class:`BundleSpec` -> one complete bundle folder.

The nine paper bundles are the writer fed with the paper's table (:func:`paper_bundle_specs`); bundles planned for a
user's dataset (``dsd-new-bundle``) go through the same writer.
"""

from .spec import CHANGELOG, VERSION, BundleSpec, paper_bundle_spec, paper_bundle_specs
from .writer import bundle_files, stale_files, write_bundle

__all__ = ["BundleSpec", "paper_bundle_spec", "paper_bundle_specs", "bundle_files", "stale_files", "write_bundle",
           "VERSION", "CHANGELOG"]
