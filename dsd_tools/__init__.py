"""Tools that build, check, package, study and benchmark the DSD bundles. Installed with the project, never vendored
into a bundle: a bundle's own code is ``dsd_components``.

Console commands (each answers ``--help``): ``dsd-demo``, ``dsd-make-demo-data``, ``dsd-check-data``,
``dsd-prepare-datalist``, ``dsd-generate``, ``dsd-verify``, ``dsd-package``, ``dsd-fetch``, ``dsd-study``,
``dsd-bench``, ``dsd-count-params``, ``dsd-plot-qualitative``.
"""
