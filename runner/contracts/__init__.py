"""Typed hand-offs between the stages (versioned pydantic models; see ``docs/ARCHITECTURE.md``).

- :class:`RunnerConfig`: a package's ``config.runner`` (exporter and ``runner tune`` write it; ``runner
  predict | tune | test`` read it through :func:`runner.inference.load_package`).
- :class:`RunMeta`: a training run's checkpoint metadata (``runner train`` writes it; the exporter,
  ``runner tune`` on a run and resuming read it through :func:`runner.training.load_run`).
"""

from runner.contracts.package import (
    PostprocessingConfig,
    RunnerConfig,
    SizeRuleInfo,
    TargetsInfo,
    TestTensorInfo,
    TrainingInfo,
    TunedOn,
    ValidationInfo,
    dump_runner_config,
    parse_runner_config,
)
from runner.contracts.run import (
    ArchitectureInfo,
    BestInfo,
    PreprocessingInfo,
    RunData,
    RunMeta,
    parse_run_meta,
)
from runner.contracts.versioning import Contract, Versioned

__all__ = [
    "ArchitectureInfo",
    "BestInfo",
    "Contract",
    "PostprocessingConfig",
    "PreprocessingInfo",
    "RunData",
    "RunMeta",
    "RunnerConfig",
    "SizeRuleInfo",
    "TargetsInfo",
    "TestTensorInfo",
    "TrainingInfo",
    "TunedOn",
    "ValidationInfo",
    "Versioned",
    "dump_runner_config",
    "parse_run_meta",
    "parse_runner_config",
]
