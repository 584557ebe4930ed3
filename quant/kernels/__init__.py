"""Which code path runs quant/'s hot loops: Triton kernels on CUDA, torch elsewhere.

The torch code in quant/ is the CPU path and the reference every kernel is tested against
(bit-identical codes, outputs within float tolerance). ``LVLMBENCH_KERNELS`` chooses:

- ``auto`` (default): Triton for CUDA tensors when ``triton`` imports, torch otherwise.
- ``torch``: always the torch path (to compare, or to rule a kernel out).
- ``triton``: always Triton; CPU tensors then need ``TRITON_INTERPRET=1`` (Triton's interpreter,
  which is how the test suite runs every kernel without a GPU). An error if triton is missing.

Reports record :func:`kernel_path` of the model's device, so a number says which code made it.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

KERNEL_CHOICES = ("auto", "torch", "triton")
ENV_VAR = "LVLMBENCH_KERNELS"


def kernel_choice() -> str:
    """The validated value of ``LVLMBENCH_KERNELS`` (``auto`` when unset)."""
    choice = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if choice not in KERNEL_CHOICES:
        raise ValueError(f"invalid {ENV_VAR}={os.environ.get(ENV_VAR)!r}: allowed values are {', '.join(KERNEL_CHOICES)}")
    return choice


@functools.cache
def triton_available() -> bool:
    """True when triton imports (it may be installed without a usable GPU: see ``interpreting``)."""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        import triton  # noqa: F401
    except Exception:  # a broken install is "not available", not a crash of every quantized run
        return False
    return True


def interpreting() -> bool:
    """Triton's interpreter is on (kernels run on CPU tensors through numpy)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def use_triton(device: torch.device | str) -> bool:
    """Whether quant/ runs its Triton kernels for tensors on ``device``."""
    choice = kernel_choice()
    if choice == "torch":
        return False
    device = torch.device(device)
    if choice == "triton":
        if not triton_available():
            raise RuntimeError(f"{ENV_VAR}=triton but triton is not installed (pip install triton), "
                               f"or set {ENV_VAR}=torch")
        if device.type != "cuda" and not interpreting():
            raise RuntimeError(f"{ENV_VAR}=triton on {device.type} tensors needs TRITON_INTERPRET=1 "
                               f"(Triton's CPU interpreter), or set {ENV_VAR}=torch")
        return True
    return device.type == "cuda" and triton_available() and not interpreting()


def kernel_path(device: torch.device | str) -> str:
    """'triton', 'triton-interpreter' or 'torch': what runs for tensors on ``device``."""
    if not use_triton(device):
        return "torch"
    return "triton-interpreter" if interpreting() else "triton"


__all__ = ["ENV_VAR", "KERNEL_CHOICES", "interpreting", "kernel_choice", "kernel_path", "triton_available",
           "use_triton"]
