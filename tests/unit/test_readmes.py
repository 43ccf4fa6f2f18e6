"""Bundle READMEs in the model zoo's template shape, saying what the configs do, with nothing outside the bundle."""

from __future__ import annotations

import re

import pytest
from monai.bundle import ConfigParser
from support.bundles import BUNDLES, ROOT
from support.paper_numbers import MEAN_DICE

# the zoo's docs/readme_template.md sections we fill, in its order (plus our own training configuration and license)
SECTIONS = ["## **Model Description**", "## **Data**", "#### **Preprocessing**", "#### **Augmentation**",
            "## **Training configuration**", "## **System Configuration**", "## **Performance**",
            "## **Additional Usage Steps**", "## **Limitations**", "## **Citation Info**", "## **References**",
            "## **License**"]


def _readme(name: str) -> str:
    return (ROOT / "bundles" / name / "docs" / "README.md").read_text()


@pytest.mark.parametrize("name", BUNDLES)
def test_readme_follows_the_zoo_template(name):
    text = _readme(name)
    positions = [text.find(s) for s in SECTIONS]
    assert -1 not in positions, [s for s, p in zip(SECTIONS, positions) if p < 0]
    assert positions == sorted(positions)
    assert text.startswith(f"# {name}\n") and "### **Authors**" in text and "### **Tags**" in text


@pytest.mark.parametrize("name", BUNDLES)
def test_readme_is_readable_and_self_contained(name):
    text = _readme(name)
    assert "SPEC.md" not in text and "$torch" not in text and "@patch_size" not in text
    assert "RandFlipd; RandFlipd" not in text and text.count("`RandFlipd`") == 1
    assert not re.search(r"\]\((?!https?://)[^)]*\)", text), "a link to a file: the README travels without the repo"
    assert not re.search(r"(?<!\.)\.\./", text) and "docs/PERFORMANCE.md" not in text  # ".../" elides a path
    # the layered evaluation command, the model zoo's way
    assert f"\"['bundles/{name}/configs/train.json','bundles/{name}/configs/evaluate.json']\"" in text


@pytest.mark.parametrize("name", BUNDLES)
def test_performance_is_the_papers_labelled_as_such(name):
    text = _readme(name)
    section = text[text.index("## **Performance**"):text.index("## **Additional Usage Steps**")]
    base, dsd = MEAN_DICE[name]
    assert f"mean Dice {base:g} -> {dsd:g} %" in section.replace(".0 ", " ")
    assert "Paper result" in section and "not scores of weights shipped" in section
    assert "No weights are shipped with this source bundle" in section


@pytest.mark.parametrize("name", BUNDLES)
def test_citations_are_bibtex(name):
    text = _readme(name)
    bib = text[text.index("```bibtex") + len("```bibtex"):]
    bib = bib[:bib.index("```")]
    entries = re.findall(r"@(article|inproceedings)\{(\w+),", bib)
    assert ("article", "banerjee2025dsd") in entries and ("article", "cardoso2022monai") in entries
    assert bib.count("{") == bib.count("}")
    refs = text[text.index("## **References**"):text.index("## **License**")]
    assert len(re.findall(r"^\d+\. ", refs, flags=re.M)) == len(entries)
    dataset_key = {"mmwhs": "zhuang2016mmwhs", "brats": "menze2015brats", "hippocampus": "antonelli2022msd"}
    assert dataset_key[name.split("_")[0]] in bib


@pytest.mark.parametrize("name", BUNDLES)
def test_data_license_and_large_files(name):
    lic = (ROOT / "bundles" / name / "docs" / "data_license.txt").read_text()
    assert lic.startswith("Third Party Licenses\n---") and "/****" in lic
    source = {"mmwhs": "https://zmiclab.github.io/zxh/0/mmwhs/", "brats": "http://medicaldecathlon.com/",
              "hippocampus": "http://medicaldecathlon.com/"}[name.split("_")[0]]
    assert f"i. " in lic and source in lic
    # the source bundle ships no weights: an empty list, which the zoo's download step (ConfigParser + one
    # download_url per entry) accepts; an entry with url "" would fail it
    parser = ConfigParser()
    parser.read_config(str(ROOT / "bundles" / name / "large_files.yml"))
    assert parser.get()["large_files"] == []
