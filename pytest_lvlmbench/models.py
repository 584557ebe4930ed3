"""Model registry: aliases, local directories and the embedded zoo, resolved before any weight loads.

Only LLaVA-family architectures are accepted (LlavaForConditionalGeneration and
LlavaNextForConditionalGeneration), safetensors only, and never remote code unless the user
passes ``trust_remote_code`` explicitly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .zoo import MODELS_DIR

ALIASES = {
    "tiny": str(MODELS_DIR / "tiny"),
    "tiny-next": str(MODELS_DIR / "tiny-next"),
    "llava7b": "llava-hf/llava-1.5-7b-hf",
    "llava13b": "llava-hf/llava-1.5-13b-hf",
    "llava-next-7b": "llava-hf/llava-v1.6-vicuna-7b-hf",
    "llava-next-mistral-7b": "llava-hf/llava-v1.6-mistral-7b-hf",
}
LLAVA_ARCHITECTURES = ("LlavaForConditionalGeneration", "LlavaNextForConditionalGeneration")
HUB_ARCHITECTURES = {  # what the hub aliases are, without reaching the hub
    "llava-hf/llava-1.5-7b-hf": "LlavaForConditionalGeneration",
    "llava-hf/llava-1.5-13b-hf": "LlavaForConditionalGeneration",
    "llava-hf/llava-v1.6-vicuna-7b-hf": "LlavaNextForConditionalGeneration",
    "llava-hf/llava-v1.6-mistral-7b-hf": "LlavaNextForConditionalGeneration",
}


@dataclass(frozen=True)
class ModelRef:
    """A model the run will load: the name the user gave and where it comes from."""

    name: str
    source: str        # local directory or hub id
    is_local: bool


def resolve_model(name: str) -> ModelRef:
    """Alias, local directory or hub id -> ModelRef; unknown aliases and bad paths raise ValueError."""
    source = ALIASES.get(name, name)
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"model {name!r}: directory {path} has no config.json")
        check_architecture(name, json.loads((path / "config.json").read_text()))
        return ModelRef(name, str(path.resolve()), True)
    looks_like_path = source.startswith((".", "/", "~")) or source.count("/") > 1
    if looks_like_path:
        raise ValueError(f"model {name!r}: local path {path} does not exist")
    if "/" not in source:
        raise ValueError(f"unknown model alias {name!r}: known aliases are {sorted(ALIASES)}, "
                         "or give a local directory or a hub id (owner/name)")
    return ModelRef(name, source, False)


def check_architecture(name: str, config: dict) -> None:
    architectures = config.get("architectures") or []
    if not any(a in LLAVA_ARCHITECTURES for a in architectures):
        raise ValueError(f"model {name!r} is {architectures or 'of unknown architecture'}, not LLaVA-family: "
                         f"supported are {LLAVA_ARCHITECTURES}")


def describe_model(name: str) -> tuple[str, str, str]:
    """(source, architecture, whether it is available here) of an alias, local directory or hub id."""
    ref = resolve_model(name)
    if ref.is_local:
        architectures = json.loads((Path(ref.source) / "config.json").read_text()).get("architectures") or ["?"]
        return ref.source, ", ".join(architectures), "yes (local)"
    from huggingface_hub import try_to_load_from_cache

    cached = isinstance(try_to_load_from_cache(ref.source, "config.json"), str)
    return (ref.source, HUB_ARCHITECTURES.get(ref.source, "? (read from the hub at load time)"),
            "yes (in the Hugging Face cache)" if cached else "no: not in the Hugging Face cache; "
            f"huggingface-cli download {ref.source}")
