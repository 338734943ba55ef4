"""Per-dataset recipes: the registry's recipes, ``TrainConfig.for_dataset``, the command line (recipe options default to
the recipe of ``--dataset``, every option passes through torchrun), the notebooks' ``None`` parameters and the
pipeline's presets."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from torch.distributed.run import get_args_parser

from idkl_lib.checkpoint import load_checkpoint
from idkl_lib.config import LossWeights, TrainConfig
from idkl_lib.config.recipe import RECIPE_FIELDS, recipe_changes, recipe_line, recipe_name
from idkl_lib.data import VIDataset
from idkl_lib.data.registry import DATASETS, SYNTHETIC_RECIPE, training_recipe
from idkl_lib.notebook.params import ParameterError, check_params, notebook_recipe
from idkl_lib.pipeline import DEFAULT_STEPS, PRESETS
from idkl_lib.pipeline.steps import _resolve_params
from idkl_lib.runs import CHECKPOINT_NAME
from idkl_lib.train import cli as train_cli
from idkl_lib.train.loop import train

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"

# What `make demo` and JupyterLab trained with before the notebooks' recipe parameters became None: the literals of
# notebook 02's parameters cell (and TrainConfig's defaults for what it did not set).
DEMO_VALUES: dict[str, Any] = {
    "arch": "resnet18",
    "base_width": 8,
    "pretrained": False,
    "height": 128,
    "width": 64,
    "p": 8,
    "k": 4,
    "epochs": 20,
    "lr": 0.01,
    "milestones": [16],
    "margin": 1.3,
    "augment": False,
    "random_erasing": 0.0,
    "loss_preset": "small_batch",
}


# ----------------------------------------------------------------------------------------------- the recipes


def test_reference_recipes_per_dataset() -> None:
    expected = {
        "sysu": (384, 144, 12, 10, "sysu"),
        "llcm": (384, 144, 12, 10, "llcm"),
        "regdb": (256, 128, 6, 10, "regdb"),
    }
    for name, (height, width, p, k, preset) in expected.items():
        cfg = TrainConfig.for_dataset(name)
        assert (cfg.dataset, cfg.height, cfg.width, cfg.p, cfg.k, cfg.loss_preset) == (
            name,
            height,
            width,
            p,
            k,
            preset,
        )
        # common to the three (docs/method.md#41-recipe-per-dataset): Adam 3.5e-4, [55, 95], 160 epochs, no warm-up
        assert (cfg.lr, cfg.weight_decay, cfg.milestones, cfg.gamma, cfg.warmup_epochs, cfg.epochs) == (
            3.5e-4,
            5e-3,
            (55, 95),
            0.1,
            0,
            160,
        )
        assert (cfg.arch, cfg.pretrained, cfg.base_width, cfg.augment, cfg.random_erasing, cfg.margin) == (
            "resnet50",
            True,
            None,
            True,
            0.5,
            1.3,
        )
    regdb = TrainConfig.for_dataset("regdb").loss_weights()
    assert regdb.tgsa_inter == regdb.tgsa_intra == regdb.tgsa_intra_cross == 0  # TGSA off on RegDB
    assert LossWeights.preset("sysu").tgsa_inter > 0


def test_plain_constructor_is_the_sysu_recipe_and_every_recipe_sets_every_field() -> None:
    plain = TrainConfig()
    assert {name: getattr(plain, name) for name in RECIPE_FIELDS} == dict(DATASETS["sysu"].recipe)
    assert TrainConfig.for_dataset("sysu") == plain
    for info in DATASETS.values():
        assert set(info.recipe) == set(RECIPE_FIELDS)
    assert set(SYNTHETIC_RECIPE) == set(RECIPE_FIELDS)
    TrainConfig(**SYNTHETIC_RECIPE)  # a valid configuration


def test_user_values_override_the_recipe_and_errors_name_the_dataset() -> None:
    cfg = TrainConfig.for_dataset("regdb", k=4, lr=1e-3, data_root="/data/RegDB")
    assert (cfg.height, cfg.width, cfg.p, cfg.k, cfg.lr, cfg.loss_preset) == (256, 128, 6, 4, 1e-3, "regdb")
    assert recipe_changes(cfg.to_dict(), DATASETS["regdb"].recipe) == {"k": (10, 4), "lr": (3.5e-4, 1e-3)}
    with pytest.raises(ValueError, match=r"unknown dataset 'regbd'; valid names: llcm, regdb, sysu"):
        TrainConfig.for_dataset("regbd")
    with pytest.raises(ValueError, match=r"TrainConfig.k=5: K images per identity must be even"):
        TrainConfig.for_dataset("regdb", k=5)


def test_recipe_line_names_the_dataset_values_and_changes() -> None:
    line = recipe_line(TrainConfig.for_dataset("regdb", k=4))
    assert line.startswith("recipe regdb: 256x128, P 6 x K 4, loss regdb, lr 0.00035, 160 epochs (milestones 55 95)")
    assert line.endswith("changed from the regdb recipe: k 4 (recipe 10)") and "\n" not in line
    assert recipe_line(TrainConfig.for_dataset("llcm")).endswith("the llcm recipe unchanged")


def test_a_synthetic_folder_trains_with_the_synthetic_recipe(sysu_root: Path, tmp_path: Path) -> None:
    # a synthetic dataset is parsed with its layout's name ("sysu"); its recipe is the synthetic one, not SYSU-MM01's
    cfg = TrainConfig(dataset="sysu", data_root=str(sysu_root), **{n: SYNTHETIC_RECIPE[n] for n in RECIPE_FIELDS})
    assert recipe_name(cfg) == "synthetic"
    line = recipe_line(cfg)
    assert line == (
        "recipe synthetic (sysu layout): 128x64, P 8 x K 4, loss small_batch, lr 0.01, 20 epochs (milestones 16), "
        "resnet18; "
        "the synthetic recipe unchanged"
    )
    assert recipe_line(dataclasses.replace(cfg, k=2)).endswith("changed from the synthetic recipe: k 2 (recipe 4)")
    real = dataclasses.replace(cfg, data_root=str(tmp_path))  # no .synthetic.json: a real SYSU-MM01 folder
    assert recipe_name(real) == "sysu" and "changed from the sysu recipe: arch resnet18 (recipe resnet50)" in (
        recipe_line(real)
    )


# ----------------------------------------------------------------------------------------------- command line


class _Stop(BaseException):  # not an error the CLI turns into one line
    pass


def _cli_config(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> TrainConfig:
    """The configuration ``python -m idkl_lib.train ARGV`` would train with (dataset loading and training stubbed)."""
    seen: dict[str, TrainConfig] = {}

    def fake_train(cfg: TrainConfig, **_: Any) -> None:
        seen["cfg"] = cfg
        raise _Stop

    monkeypatch.setattr(train_cli, "load_dataset", lambda cfg: None)
    monkeypatch.setattr(train_cli, "train", fake_train)
    with pytest.raises(_Stop):
        train_cli.main([*argv, "--device", "cpu", "--no-progress"])
    return seen["cfg"]


def test_cli_resolves_the_recipe_of_the_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    regdb = _cli_config(["--dataset", "regdb"], monkeypatch)
    assert regdb == TrainConfig.for_dataset("regdb", device="cpu")
    assert (regdb.height, regdb.width, regdb.p, regdb.k, regdb.loss_preset) == (256, 128, 6, 10, "regdb")
    assert _cli_config([], monkeypatch) == TrainConfig(device="cpu")  # no --dataset: SYSU-MM01 and its recipe
    mine = _cli_config(
        ["--dataset", "regdb", "--ids-per-batch", "3", "--k", "4", "--milestones", "--lr", "1e-3"], monkeypatch
    )
    assert (mine.p, mine.k, mine.milestones, mine.lr, mine.height, mine.loss_preset) == (3, 4, (), 1e-3, 256, "regdb")
    assert _cli_config(["--dataset", "llcm", "--p", "6", "--images-per-id", "2"], monkeypatch).p == 6


def test_cli_help_names_the_recipe_defaults() -> None:
    text = " ".join(train_cli.build_arg_parser().format_help().split())
    assert "default: the dataset's recipe (sysu 384, regdb 256, llcm 384)" in text
    assert "--ids-per-batch P, --p P" in text and "--images-per-id K, --k K" in text
    assert "default: the dataset's recipe (0.00035 for every dataset)" in text


def test_cli_errors_name_the_long_option(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        _cli_config(["--dataset", "regdb", "--k", "5"], monkeypatch)
    assert caught.value.code == 2
    assert "--images-per-id=5: K images per identity must be even" in capsys.readouterr().err


def _option_values(action: Any) -> list[str]:
    """A valid value list for an option of our parser."""
    if action.nargs == 0:
        return []
    if action.choices:
        return [str(next(iter(action.choices)))]
    return {"milestones": ["55", "95"], "loss_overrides": ["tgsa_inter=0"], "pretrained": ["false"]}.get(
        action.dest, ["true"] if "true" in str(action.metavar) else ["7"]
    )


def test_every_training_option_passes_through_torchrun() -> None:
    """torchrun's own parser abbreviates its options: ``--p`` is ambiguous there (``--print-completion``), so every
    option has a long name that reaches the training script unchanged, in both ``--name value`` and ``--name=value``
    form."""
    torchrun = get_args_parser()
    ours = train_cli.build_arg_parser()
    actions = [a for a in ours._actions if a.option_strings and a.dest != "help"]
    assert {"p", "k", "dataset", "resume"} <= {a.dest for a in actions}

    def arrives(args: list[str]) -> bool:
        try:
            parsed = torchrun.parse_args(["--nproc_per_node", "2", "-m", "idkl_lib.train", *args])
        except SystemExit:
            return False
        return parsed.module and parsed.training_script == "idkl_lib.train" and parsed.training_script_args == args

    failing = []
    for action in actions:
        values = _option_values(action)
        for option in action.option_strings:
            forms = [[option, *values]] + ([[f"{option}={values[0]}"]] if len(values) == 1 else [])
            failing += [form for form in forms if not arrives(form)]
            for form in forms:
                if option == action.option_strings[0]:  # and our parser reads what arrives
                    assert action.dest in vars(ours.parse_args(form))
        assert arrives([action.option_strings[0], *values]), action.option_strings
    assert all(form[0].split("=")[0] == "--p" for form in failing), failing  # only the plain-python alias fails
    every = [arg for a in actions if a.dest != "resume" for arg in (a.option_strings[0], *_option_values(a))]
    assert arrives(every)


def test_readme_torchrun_example_uses_the_long_names() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    line = next(line for line in readme.splitlines() if line.startswith("torchrun "))
    assert "--ids-per-batch" in line and " --p " not in line
    args = line.split("-m idkl_lib.train", 1)[1].split()
    assert get_args_parser().parse_args(["-m", "idkl_lib.train", *args]).training_script_args == args


# ----------------------------------------------------------------------------------------------- training


def test_training_prints_the_recipe_and_stores_it_in_the_checkpoint(
    regdb_root: Path, regdb_dataset: VIDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = TrainConfig.for_dataset(
        "regdb",
        data_root=str(regdb_root),
        arch="resnet18",
        base_width=8,
        pretrained=False,
        height=32,
        width=32,
        k=4,
        epochs=1,
        num_workers=0,
        device="cpu",
        out_dir=str(tmp_path),
        final_eval=False,
    )
    train(cfg, dataset=regdb_dataset, progress=False)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("recipe ")]
    assert lines == [recipe_line(cfg)]
    # a synthetic folder (regdb layout): the values are compared with the synthetic recipe
    assert "recipe synthetic (regdb layout): 32x32, P 6 x K 4, loss regdb" in lines[0]
    assert "height 32 (recipe 128)" in lines[0]
    saved = load_checkpoint(tmp_path / CHECKPOINT_NAME)["config"]
    assert TrainConfig.from_dict(saved) == cfg
    assert (saved["dataset"], saved["p"], saved["k"], saved["loss_preset"], saved["lr"]) == (
        "regdb",
        6,
        4,
        "regdb",
        3.5e-4,
    )


# ----------------------------------------------------------------------------------------------- notebooks, pipeline


def test_notebook_recipe_parameters_default_to_the_dataset_recipe() -> None:
    demo = notebook_recipe("synthetic")
    assert {name: demo[name] for name in DEMO_VALUES} == {**DEMO_VALUES, "milestones": (16,)}
    assert notebook_recipe("regdb", p=None, k=4)["p"] == 6 and notebook_recipe("regdb", k=4)["k"] == 4
    assert notebook_recipe("llcm") == dict(training_recipe("llcm"))
    check_params(dataset="regdb", data_root="/d", height=None, p=None, milestones=None, base_width=None)
    with pytest.raises(ParameterError, match=r"parameter height=100: image sides must be multiples of 16"):
        check_params(height=100)
    with pytest.raises(ParameterError, match=r"\['batch'\] are not recipe fields"):
        notebook_recipe("sysu", batch=3)


def _train_params(preset: str, **overrides: Any) -> dict[str, dict[str, Any]]:
    notebooks = {s.notebook: NOTEBOOKS_DIR / f"{s.notebook}.ipynb" for s in DEFAULT_STEPS}
    steps = [s for s in DEFAULT_STEPS if s.notebook == "02_train"]
    return _resolve_params(DEFAULT_STEPS, steps, notebooks, preset, overrides, Path("/tmp/run"))


def test_demo_and_ci_presets_train_with_the_same_values_as_before() -> None:
    demo = _train_params("demo")
    for step in ("02_train", "02_train_baseline"):
        assert {name: demo[step][name] for name in DEMO_VALUES} == {
            **DEMO_VALUES,
            "loss_preset": "small_batch" if step == "02_train" else "baseline",
        }
    ci = _train_params("ci")["02_train"]
    shrunk = {name: PRESETS["ci"][name] for name in ("height", "width", "p", "k", "epochs")}
    assert {name: ci[name] for name in DEMO_VALUES} == {**DEMO_VALUES, **shrunk}
    assert shrunk == {"height": 64, "width": 32, "p": 2, "k": 2, "epochs": 1}


def test_full_preset_follows_the_dataset() -> None:
    regdb = _train_params("full", dataset="regdb", data_root="/data/RegDB")
    for step, preset in (("02_train", "regdb"), ("02_train_baseline", "baseline")):
        params = regdb[step]
        assert (params["height"], params["width"], params["p"], params["k"]) == (256, 128, 6, 10)
        assert (params["loss_preset"], params["lr"], params["epochs"], params["milestones"]) == (
            preset,
            3.5e-4,
            160,
            [55, 95],
        )
        assert (params["arch"], params["pretrained"], params["base_width"], params["device"]) == (
            "resnet50",
            True,
            None,
            "cuda",
        )
    sysu = _train_params("full", data_root="/data/SYSU-MM01")["02_train"]
    assert (sysu["dataset"], sysu["height"], sysu["p"], sysu["loss_preset"]) == ("sysu", 384, 12, "sysu")
    mine = _train_params("full", dataset="regdb", p=3)["02_train"]
    assert (mine["p"], mine["k"]) == (3, 10)
    assert not set(RECIPE_FIELDS) - {"weight_decay", "gamma", "warmup_epochs"} - set(regdb["02_train"])
    assert not {f.name for f in dataclasses.fields(TrainConfig)} & set(PRESETS["full"]) - {
        "dataset",
        "seed",
        "device",
        "num_workers",
    }
