"""The task registry: :mod:`.base` defines tasks and samples, :mod:`.shapes` registers the
synthetic shapes-world tasks; third-party tasks come in through entry points or --lvlm-include."""

from . import shapes  # noqa: F401  (registers the built-in tasks)
from .base import (CAPABILITIES, ENTRY_POINT_GROUP, TASKS, Sample, Task, all_tasks, cluster_of, get_task,  # noqa: F401
                   include, load_entry_points, register_task, tasks_for)
