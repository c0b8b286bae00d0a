"""Training recipes: the YAML files in ``model_specs/``, validated by pydantic models rejecting unknown keys.

>>> from runner.recipes import load_recipe
>>> recipe = load_recipe("model_specs/unet2d_bcd_nuclei.yaml", overrides={"training": {"iterations": 20}})
>>> recipe.targets.code, recipe.model.depth, recipe.data.patch
('BCD', 4, (256, 256))

A problem in the file (unknown key, wrong type, inconsistent sections) raises :class:`runner.errors.UserError`
naming the file and the key, e.g. ``model_specs/x.yaml: invalid recipe: training.batch_sise: unknown key
(allowed: iterations, epochs, batch_size, ...)``. Every field is documented in ``model_specs/README.md``.
"""

from runner.recipes.loading import (
    format_validation_error,
    load_recipe,
    merge,
    recipe_from_dict,
    recipe_to_dict,
    recipe_to_yaml,
    save_recipe,
)
from runner.recipes.recipe import ModelSection, Recipe
from runner.recipes.sections import (
    AugmentationSection,
    Author,
    Citation,
    ConstantSchedule,
    CosineSchedule,
    DataSection,
    ExportSection,
    LossSection,
    OptimizerSection,
    PostprocessingSection,
    ScaleRange,
    StepSchedule,
    TargetsSection,
    TrainingSection,
    ValidationSection,
    ZeroMeanUnitVariance,
)

__all__ = [
    "ModelSection",
    "AugmentationSection",
    "Author",
    "Citation",
    "ConstantSchedule",
    "CosineSchedule",
    "DataSection",
    "ExportSection",
    "LossSection",
    "OptimizerSection",
    "PostprocessingSection",
    "Recipe",
    "ScaleRange",
    "StepSchedule",
    "TargetsSection",
    "TrainingSection",
    "ValidationSection",
    "ZeroMeanUnitVariance",
    "format_validation_error",
    "load_recipe",
    "merge",
    "recipe_from_dict",
    "recipe_to_dict",
    "recipe_to_yaml",
    "save_recipe",
]
