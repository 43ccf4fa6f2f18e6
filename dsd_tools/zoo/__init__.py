"""The model zoo side of a bundle: acceptance checks (:mod:`.verify`) and release packages with a local index
(:mod:`.package`)."""
