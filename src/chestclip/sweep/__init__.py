"""Hyperparameter sweeps (``chestclip sweep``): grid, random or TPE search with Optuna over
ordinary runs, chosen on validation only, the test split read for the chosen trial alone.

Typical use::

    sweep = load_sweep("sweep-paper")  # or a path to your own sweep YAML
    result = run_sweep(sweep, "data/prepared", "runs/sweep")  # rerun to resume
    result.leaderboard, result.best_run, result.test_metrics
"""

from chestclip.utils.extras import require_extra

require_extra("sweep", "chestclip sweep")

from chestclip.sweep.run import SweepResult, run_sweep  # noqa: E402
from chestclip.sweep.space import Range, Sweep, SweepSpec, load_sweep  # noqa: E402

__all__ = ["Range", "Sweep", "SweepResult", "SweepSpec", "load_sweep", "run_sweep"]
