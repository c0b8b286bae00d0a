"""Recipes: shipped files load, the README documents every field, bad files give one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from runner.cli import app
from runner.errors import UserError
from runner.recipes import load_recipe, recipe_from_dict, recipe_to_yaml
from runner.recipes.docs import fields_markdown, sections

SPECS = Path(__file__).resolve().parents[1] / "model_specs"
MINIMAL = {"name": "t", "dims": 2, "data": {"patch": [64, 64]}, "training": {"iterations": 5}}


@pytest.mark.parametrize("name", ["unet2d_bcd_nuclei.yaml", "unet3d_bcd_nuclei.yaml"])
def test_shipped_recipes_load_and_build(name):
    recipe = load_recipe(SPECS / name)
    assert recipe.targets.code == "BCD"
    assert recipe.postprocessing.name == "watershed_bcd"
    assert recipe.export.authors and recipe.export.license and recipe.export.tags and recipe.export.citations
    net = recipe.build_model()
    assert net.head.activations == ["sigmoid", "sigmoid", "identity"]
    # the resolved recipe survives a YAML round trip unchanged
    assert recipe_from_dict(yaml.safe_load(recipe_to_yaml(recipe))) == recipe


def test_shipped_recipe_postprocessing_params_are_valid():
    from runner.training import check_postprocessing

    for name in ("unet2d_bcd_nuclei.yaml", "unet3d_bcd_nuclei.yaml"):
        check_postprocessing(load_recipe(SPECS / name))


def test_readme_documents_every_field():
    readme = (SPECS / "README.md").read_text()
    assert fields_markdown() in readme, "regenerate the tables: python -m runner.recipes.docs"
    n_fields = sum(len(model.model_fields) for _, model in sections())
    assert n_fields > 80
    for _, model in sections():
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


@pytest.mark.parametrize("name", ["unet2d_bcd_nuclei.yaml", "unet3d_bcd_nuclei.yaml"])
def test_shipped_recipes_spell_out_every_section(name):
    """No hidden defaults in the shipped files: every section and every key of each section is written."""
    from runner.recipes import Recipe

    data = yaml.safe_load((SPECS / name).read_text())
    assert set(data) == set(Recipe.model_fields)
    recipe = load_recipe(SPECS / name)
    for section in (
        "targets",
        "model",
        "data",
        "training",
        "optimizer",
        "schedule",
        "augmentation",
        "loss",
        "validation",
    ):
        assert set(data[section]) == set(type(getattr(recipe, section)).model_fields), section


def _error(data: dict, tmp_path: Path) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError) as info:
        load_recipe(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


@pytest.mark.parametrize(
    "patch, expected",
    [
        (
            {"training": {"iterations": 5, "batch_sise": 3}},
            "training.batch_sise: unknown key (allowed: iterations",
        ),
        ({"training": {"iterations": "ten"}}, "training.iterations: Input should be a valid integer"),
        ({"model": {"depth": 2, "nrom": "batch"}}, "model.nrom: unknown key"),
        (
            {"schedule": {"name": "cosine", "warmpu": 3}},
            "schedule.warmpu: unknown key (allowed: name, warmup, min_lr_ratio)",
        ),
        ({"data": {"patch": [60, 64]}}, "must be multiples of the network step [16, 16]"),
        ({"data": {"patch": [64, 64, 64]}}, "data.patch has 3 values but dims is 2"),
        ({"targets": {"code": "XYZ"}}, "unknown target code 'XYZ'"),
        ({"targets": {"channel_weights": [1, 1]}}, "channel_weights has 2 values but code BCD has 3"),
        ({"targets": {"options": {"contour_widht": 2}}}, "targets.options.contour_widht: unknown key"),
        ({"training": {"iterations": 5, "epochs": 3}}, "give exactly one of training.iterations"),
        ({"validation": {"metric": "accuracy@high"}}, "metric must be FIELD@IOU"),
        ({"preprocessing": {"name": "percentile"}}, "preprocessing"),
        ({"trainig": {}}, "trainig: unknown key"),
        ({"optimizer": {"lr": -1}}, "optimizer.lr: Input should be greater than 0"),
        ({"export": {"authors": [{"name": "a", "mail": "x"}]}}, "export.authors.0.mail: unknown key"),
    ],
)
def test_bad_recipes_name_the_key_and_file(patch, expected, tmp_path):
    from runner.recipes import merge

    assert expected in _error(merge(MINIMAL, patch), tmp_path)


def test_bad_recipe_files(tmp_path):
    with pytest.raises(UserError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(UserError, match="empty"):
        load_recipe(tmp_path / "empty.yaml")
    (tmp_path / "syntax.yaml").write_text("name: x\n  dims: [2\n")
    with pytest.raises(UserError, match="not valid YAML at line"):
        load_recipe(tmp_path / "syntax.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="must be a YAML mapping"):
        load_recipe(tmp_path / "list.yaml")


def test_overrides_and_epochs(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    recipe = load_recipe(path, overrides={"training": {"batch_size": 3}, "model": {"depth": 3}})
    assert recipe.training.batch_size == 3 and recipe.training.iterations == 5 and recipe.model.depth == 3
    assert recipe.total_iterations(100) == 5
    by_epochs = recipe_from_dict({**MINIMAL, "training": {"epochs": 2, "batch_size": 4}})
    assert by_epochs.total_iterations(10) == 2 * 3
    with pytest.raises(Exception, match="validation"):
        recipe.validation.every = 0  # validate_assignment


def test_cli_train_rejects_bad_recipe_before_writing(tmp_path, dataset2d):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**MINIMAL, "model": {"depth": 2, "features": "many"}}))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(bad), "--data", str(dataset2d), "--out", str(out)])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "model.features" in lines[0] and str(bad) in lines[0]
    assert not out.exists()
