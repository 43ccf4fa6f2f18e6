"""Parameter counts match the paper's Tables 3 and 7 within 0.1%."""

import pytest

from dsd_components import PAPER_PARAMS
from dsd_components.params import count_parameters


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_counts_match_paper(name):
    counts = count_parameters(name)
    paper_bb, paper_dsd = PAPER_PARAMS[name]
    assert abs(counts["backbone"] / 1e6 - paper_bb) / paper_bb < 1e-3
    assert abs(counts["dsd"] / 1e6 - paper_dsd) / paper_dsd < 1e-3
    assert counts["dsd"] > counts["backbone"]
    assert (counts["dsd"] - counts["backbone"]) / counts["backbone"] < 1.5e-3  # "negligible" overhead (paper: about 0.05%)
