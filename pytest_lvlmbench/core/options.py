"""A run's options, parsed once (:mod:`pytest_lvlmbench.options`) and read by every part of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .settings import Setting


def dtype_name(dtype: str, device: str) -> str:
    """The float dtype a run computes in: ``auto`` is float16 on GPU, float32 on CPU (half-precision CPU
    kernels are slow)."""
    if dtype == "auto":
        return "float16" if device.startswith("cuda") else "float32"
    return dtype


@dataclass
class Options:
    models: list[str]
    settings: list[Setting]
    limit: int | None = None
    batch_size: int = 32
    device: str = "cpu"
    dtype: str = "auto"
    seed: int = 0
    cache_dir: Path = Path(".lvlmbench")
    resamples: int = 1000            # bootstrap resamples behind every interval and paired test
    report: Path | None = None       # JSON report
    report_answers: bool = False
    report_md: Path | None = None    # GitHub-flavoured markdown (a PR comment)
    report_csv: Path | None = None   # one row per (model, setting, task, metric)
    plot: Path | None = None
    thresholds: Path | None = None   # overrides lvlm_thresholds.toml beside each test module
    save: str | None = None
    compare: str | None = None
    compare_tolerance: float = 0.0
    include: list[str] = field(default_factory=list)
    check_invariance: int = 0        # items per record regenerated alone and shuffled (0: off)
    data_dirs: list[Path] = field(default_factory=list)   # local copies of hub datasets, searched first
    judge_url: str | None = None     # OpenAI-compatible endpoint of the LLM judge (MM-Vet, HallusionBench)
    judge_model: str | None = None
    toxicity_model: Path | None = None   # local toxicity classifier; None: the lexicon scorer
    calibration: str = "auto"        # AWQ calibration source, see CALIBRATION_SOURCES
    published_tolerance: float = 0.03   # relative gap of a full FP16 baseline to its published score
    published_check: str = "warn"    # off | warn | fail
    margin: float = 0.02             # non-inferiority margin δ where the thresholds file's [margin] has none
    shard: tuple[int, int] | None = None   # (I, N): run the I-th of N deterministic parts of the grid
    layer_sweep: int = 0             # blocks of this many decoder layers, each compressed alone (0: off)
    settings_asked: bool = False     # settings named by the user (bits, methods, layers), not the default grid
    frontier: list[str] = field(default_factory=list)   # --lvlm-frontier: capabilities searched instead of tests
    merge: list[Path] = field(default_factory=list)     # --lvlm-merge: saved runs reported instead of tests
    list_tasks: bool = False
    list_models: bool = False

    @property
    def command(self) -> str | None:
        """The non-test mode this run is (:mod:`pytest_lvlmbench.commands`), or None for a test run."""
        if self.merge:
            return "merge"
        if self.frontier:
            return "frontier"
        return "list" if self.list_tasks or self.list_models else None

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype, self.device)

    @property
    def generations_path(self) -> Path:
        """The generation cache's file: the one place its name is written."""
        return self.cache_dir / "generations.sqlite"
