"""The task registry: :mod:`.base` defines tasks and samples, :mod:`.shapes` registers the
synthetic shapes-world tasks, one module per real dataset registers its tasks (read through
:mod:`pytest_lvlmbench.tasks.data`); third-party tasks come in through entry points or --lvlm-include."""

from . import shapes  # noqa: F401  (registers the built-in tasks)
# real datasets, in the registry's (and so the reports') order: POPE before GQA, as it has always been
from . import (coco_caption, pope, gqa, hallusionbench, mme, mmvet, scienceqa, social_counterfactuals,  # noqa: F401
               textvqa, vizwiz)
from .base import (CAPABILITIES, ENTRY_POINT_GROUP, TASKS, Sample, Task, all_tasks, cluster_of, get_task,  # noqa: F401
                   has_image, include, load_entry_points, register_task, tasks_for)
