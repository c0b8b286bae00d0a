"""One option set: the CLI, PredictOptions, Predictor and predict_array share InferenceOptions."""

from __future__ import annotations

import pytest

from runner.errors import UserError
from runner.inference.batch import PredictOptions
from runner.inference.options import InferenceOptions, with_overrides


def test_predict_options_extend_the_inference_options():
    inference = set(InferenceOptions.model_fields)
    assert inference <= set(PredictOptions.model_fields)
    assert {"device", "tile", "halo", "border", "memory_mb", "tta"} <= inference
    for name in inference:  # declared once: same description, same default
        assert (
            PredictOptions.model_fields[name].description == InferenceOptions.model_fields[name].description
        )


def test_overrides_validate_and_normalise():
    opts = with_overrides(PredictOptions(save_probabilities=True), {"tile": 256, "halo": (8, 16)})
    assert isinstance(opts, PredictOptions) and opts.save_probabilities
    assert opts.tile == [256] and opts.halo == [8, 16]
    with pytest.raises(TypeError, match="unknown inference option"):
        with_overrides(None, {"tiles": 3})
    with pytest.raises(UserError, match="border"):
        with_overrides(None, {"border": "mirror"})


def test_cli_help_comes_from_the_options():
    from typer.testing import CliRunner

    from runner.cli import app

    result = CliRunner().invoke(app, ["predict", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "reproduces the package's test outputs" in text  # --border's description
