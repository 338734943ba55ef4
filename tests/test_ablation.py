"""Ablation presets: which terms each one switches on, with the base preset's weights, accepted wherever presets are."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from idkl_lib.config import LossWeights, TrainConfig, ablation
from idkl_lib.workbench import check_params

CORE = {"id", "id_sp", "tri_sh", "tri_sp"}
IP = {"ip_entropy", "ip_centroid"}
TGSA = {"tgsa_inter", "tgsa_intra", "tgsa_intra_cross"}
CSA = {"csa1_inter", "csa1_intra", "csa2_inter", "csa2_intra"}
MOD = {"disc", "confuser"}


@pytest.mark.parametrize(
    ("name", "on"),
    [
        ("baseline", CORE),
        ("+ip", CORE | IP),
        ("+ip+tgsa", CORE | IP | TGSA),
        ("+ip+tgsa+csa", CORE | IP | TGSA | CSA),
        ("full", CORE | IP | TGSA | CSA | MOD),
        ("full-ip", CORE | TGSA | CSA | MOD),
        ("full-tgsa", CORE | IP | CSA | MOD),
        ("full-csa", CORE | IP | TGSA | MOD),
        ("full-mod", CORE | IP | TGSA | CSA),
        ("full-kd", CORE | IP | MOD),
        ("full-mdr", CORE | IP | MOD | {"tgsa_inter", "csa1_inter", "csa2_inter"}),
    ],
)
def test_terms_on_and_weights_from_the_base(name: str, on: set[str]) -> None:
    sysu = LossWeights.preset("sysu").as_dict()
    assert LossWeights.preset(name).active() == {t: sysu[t] for t in LossWeights.names() if t in on}
    small = LossWeights.preset("small_batch").as_dict()
    expected = {t: small[t] for t in LossWeights.names() if t in on and small[t]}
    assert LossWeights.preset(f"{name}@small_batch").active() == expected


def test_groups_agree_with_the_config_groups_and_cover_every_term() -> None:
    for name in ablation.ABLATION_GROUPS:  # one vocabulary: every ablation group is a LossWeights group
        assert set(ablation.ABLATION_GROUPS[name]) == set(LossWeights.GROUPS[name])
    cumulative = [set(LossWeights.preset(n).active()) for n in ablation.CUMULATIVE]
    assert all(a < b for a, b in zip(cumulative, cumulative[1:], strict=False)), "each step adds terms"
    assert LossWeights.preset("full") == LossWeights.preset("sysu")
    assert LossWeights.preset("full@small_batch") == LossWeights.preset("small_batch")
    assert LossWeights.preset("full-kd") == LossWeights.preset("no_distill")


def _documented_groups(path: str, header: str) -> set[str]:
    """The backticked group names in the first column of the groups table that starts with ``header``."""
    text = Path(path).read_text(encoding="utf-8")
    table = text[text.index(header) :].split("\n\n")[0]
    return {name for line in table.splitlines()[2:] for name in re.findall(r"`([a-z0-9]+)`", line.split("|")[1])}


def test_documented_groups_are_the_code_groups_and_without_accepts_them() -> None:
    ablation_doc = _documented_groups("docs/ablation.md", "| group | terms |")
    method_doc = _documented_groups("docs/method.md", "| group (`LossWeights.GROUPS`) | terms |")
    assert ablation_doc == set(ablation.ABLATION_GROUPS)
    assert method_doc == set(LossWeights.GROUPS)
    for name in ablation_doc | method_doc:
        removed = LossWeights().without(name)
        assert {t for t, w in LossWeights().active().items() if t not in removed.active()} == set(
            LossWeights.GROUPS[name]
        )
    for preset, group in ablation.LEAVE_ONE_OUT.items():  # full-<group> is full without that group
        assert LossWeights.preset(preset) == LossWeights.preset("full").without(group)
    with pytest.raises(ValueError, match="'modality' is called 'mod'"):
        LossWeights().without("modality")


def test_names_are_accepted_wherever_presets_are() -> None:
    for name in ablation.ABLATION_PRESETS:
        assert name in LossWeights.PRESETS
        assert TrainConfig(loss_preset=name).loss_weights() == LossWeights.preset(name)
        check_params(loss_preset=name)
    for bad in ("+tgsa", "full-foo", "+ip@regdb", "full@"):
        assert ablation.resolve(bad) is None
        with pytest.raises(ValueError, match=re.escape(f"unknown LossWeights preset {bad!r}")):
            LossWeights.preset(bad)
