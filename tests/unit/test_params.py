"""Parameter counts match the paper's Tables 3 and 7 within 0.1%, and the paper table holds the paper's numbers."""

import pytest
from support.paper_numbers import MEAN_DICE, PARAMS_M

from dsd_tools.paper import BACKBONES, PAIRINGS
from dsd_tools.params import count_parameters


@pytest.mark.parametrize("name", sorted(PARAMS_M))
def test_counts_match_paper(name):
    counts = count_parameters(name)
    paper_bb, paper_dsd = PARAMS_M[name]
    assert abs(counts["backbone"] / 1e6 - paper_bb) / paper_bb < 1e-3
    assert abs(counts["dsd"] / 1e6 - paper_dsd) / paper_dsd < 1e-3
    assert counts["dsd"] > counts["backbone"]
    assert (counts["dsd"] - counts["backbone"]) / counts["backbone"] < 1.5e-3  # "negligible" overhead (paper: about 0.05%)


def test_paper_table_holds_the_papers_numbers():
    assert {k: b.paper_params_m for k, b in BACKBONES.items() if b.paper_params_m} == PARAMS_M
    assert {k: p.dice for k, p in PAIRINGS.items()} == MEAN_DICE
