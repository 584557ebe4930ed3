"""The shapes world: a deterministic synthetic dataset covering all ten capabilities (:mod:`.world`)
and its tasks (:mod:`.tasks`), which the embedded tiny models are trained for."""

from . import tasks  # noqa: F401  (registers them)
