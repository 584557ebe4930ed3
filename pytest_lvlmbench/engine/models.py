"""Model registry: aliases, local directories and the embedded zoo, resolved before any weight loads.

The architectures of :mod:`.families` are accepted (LLaVA, LLaVA-NeXT, LLaVA-OneVision, Qwen2-VL,
Qwen2.5-VL, InternVL, Idefics3, SmolVLM, Gemma 3), safetensors only, and never remote code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .families import Family, family_of

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

MODELS_DIR = Path(__file__).parents[1] / "zoo" / "models"   # the embedded checkpoints
EMBEDDED = ("tiny", "tiny-next", "tiny-qwen")


@dataclass(frozen=True)
class HubModel:
    """A hub checkpoint with an alias: what it is and what a user downloads to run it."""

    hub_id: str
    architecture: str
    params_billion: float   # the model card's size; the bf16 safetensors are about 2 bytes per parameter
    note: str = ""

    @property
    def download(self) -> str:
        return f"~{2 * self.params_billion:.0f} GB" + (f"; {self.note}" if self.note else "")


HUB_MODELS = {
    "llava7b": HubModel("llava-hf/llava-1.5-7b-hf", "LlavaForConditionalGeneration", 7.06),
    "llava13b": HubModel("llava-hf/llava-1.5-13b-hf", "LlavaForConditionalGeneration", 13.35),
    "llava-next-7b": HubModel("llava-hf/llava-v1.6-vicuna-7b-hf", "LlavaNextForConditionalGeneration", 7.06),
    "llava-next-mistral-7b": HubModel("llava-hf/llava-v1.6-mistral-7b-hf", "LlavaNextForConditionalGeneration", 7.57),
    "llava-ov-0.5b": HubModel("llava-hf/llava-onevision-qwen2-0.5b-ov-hf", "LlavaOnevisionForConditionalGeneration",
                              0.89),
    "llava-ov-7b": HubModel("llava-hf/llava-onevision-qwen2-7b-ov-hf", "LlavaOnevisionForConditionalGeneration", 8.03),
    "qwen2-vl-2b": HubModel("Qwen/Qwen2-VL-2B-Instruct", "Qwen2VLForConditionalGeneration", 2.21),
    "qwen2-vl-7b": HubModel("Qwen/Qwen2-VL-7B-Instruct", "Qwen2VLForConditionalGeneration", 8.29),
    "qwen2.5-vl-3b": HubModel("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen2_5_VLForConditionalGeneration", 3.75),
    "qwen2.5-vl-7b": HubModel("Qwen/Qwen2.5-VL-7B-Instruct", "Qwen2_5_VLForConditionalGeneration", 8.29),
    "internvl3-1b": HubModel("OpenGVLab/InternVL3-1B-hf", "InternVLForConditionalGeneration", 0.94),
    "internvl3-2b": HubModel("OpenGVLab/InternVL3-2B-hf", "InternVLForConditionalGeneration", 2.09),
    "internvl3-8b": HubModel("OpenGVLab/InternVL3-8B-hf", "InternVLForConditionalGeneration", 7.94),
    "idefics3-8b": HubModel("HuggingFaceM4/Idefics3-8B-Llama3", "Idefics3ForConditionalGeneration", 8.46),
    "smolvlm-2b": HubModel("HuggingFaceTB/SmolVLM-Instruct", "Idefics3ForConditionalGeneration", 2.25),  # SmolVLM 1
    "smolvlm2-2b": HubModel("HuggingFaceTB/SmolVLM2-2.2B-Instruct", "SmolVLMForConditionalGeneration", 2.25),
    "gemma3-4b": HubModel("google/gemma-3-4b-it", "Gemma3ForConditionalGeneration", 4.3,
                          "gated: accept Google's license on the hub first, then log in (huggingface-cli login)"),
}
ALIASES = {**{name: str(MODELS_DIR / name) for name in EMBEDDED},
           **{alias: model.hub_id for alias, model in HUB_MODELS.items()}}


@dataclass(frozen=True)
class ModelRef:
    """A model the run will load: the name the user gave and where it comes from."""

    name: str
    source: str        # local directory or hub id
    is_local: bool


def resolve_model(name: str) -> ModelRef:
    """Alias, local directory or hub id -> ModelRef; unknown aliases and bad paths raise ValueError.
    A local directory is checked here, before anything loads: see :func:`check_local_model`."""
    source = ALIASES.get(name, name)
    path = Path(source).expanduser()
    if path.exists():
        check_local_model(name, path)
        return ModelRef(name, str(path.resolve()), True)
    looks_like_path = source.startswith((".", "/", "~")) or source.count("/") > 1
    if looks_like_path:
        raise ValueError(f"model {name!r}: local path {path} does not exist")
    if "/" not in source:
        raise ValueError(f"unknown model alias {name!r}: known aliases are {sorted(ALIASES)}, "
                         "or give a local directory or a hub id (owner/name)")
    return ModelRef(name, source, False)


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def read_config(name: str, path: Path) -> dict:
    """config.json as a dict; a missing or malformed file raises ValueError naming it."""
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ValueError(f"model {name!r}: directory {path} has no config.json")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"model {name!r}: {config_path} is not valid JSON ({error}); re-download the model "
                         "or fix the file") from None
    if not isinstance(config, dict):
        raise ValueError(f"model {name!r}: {config_path} holds {type(config).__name__}, not a JSON object")
    return config


def check_local_model(name: str, path: Path) -> None:
    """A local checkpoint we are willing to load: a supported family's config that asks for no remote code,
    and complete safetensors weights (pickle weights are never loaded: unpickling runs code)."""
    config = read_config(name, path)
    family_of(name, config)
    if config.get("auto_map"):
        raise ValueError(f"model {name!r}: {path / 'config.json'} asks for remote code (auto_map); "
                         "lvlmbench never runs a checkpoint's own code")
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as error:
            raise ValueError(f"model {name!r}: {index} is not a safetensors index ({error!r})") from None
        missing = [s for s in shards if not (path / s).is_file()]
        if missing:
            raise ValueError(f"model {name!r}: shards {missing} listed in {index.name} are missing from {path}; "
                             "the download is incomplete")
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise ValueError(f"model {name!r}: {path} has only pickle weights ({', '.join(pickles)}), which are "
                             "never loaded (unpickling runs arbitrary code); convert them to safetensors "
                             "(model.save_pretrained(DIR, safe_serialization=True)) where you trust them")
        raise ValueError(f"model {name!r}: {path} has no *.safetensors weights")
    for weights_file in weights:
        check_safetensors(name, weights_file)


def check_safetensors(name: str, path: Path) -> None:
    """The file holds a whole safetensors payload: an 8-byte header length, a JSON header, and at
    least as many data bytes as its tensors' offsets promise. Catches truncated downloads early."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        header_length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if header_length < 2 or 8 + header_length > size:
            raise ValueError(f"model {name!r}: {path} is not a complete safetensors file ({size} bytes; "
                             "truncated or corrupt); re-download it")
        try:
            header = json.loads(handle.read(header_length))
            end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"),
                      default=0)
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, IndexError) as error:
            raise ValueError(f"model {name!r}: {path} has a corrupt safetensors header ({error!r}); "
                             "re-download it") from None
    if size < 8 + header_length + end:
        raise ValueError(f"model {name!r}: {path} is truncated: {size} bytes, its header promises "
                         f"{8 + header_length + end}; re-download it")


HUB_PROBE_TIMEOUT = 5.0   # seconds the one reachability probe of an uncached hub id may take


def check_hub_model(ref: ModelRef) -> None:
    """A hub id must be in the local Hugging Face cache or reachable now: checked once, at configure
    time, so an unreachable hub is one usage error instead of every test waiting out its timeouts.
    One HEAD request without retries comes first: hf_hub_download retries an unreachable hub with
    backoff (1+2+4+8+8 s), which made a bad id wait ~24 s for its error."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache

    config_path = try_to_load_from_cache(ref.source, "config.json")
    if not isinstance(config_path, str):
        try:
            if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
                raise ConnectionError("HF_HUB_OFFLINE is set")   # huggingface_hub may have read it too early
            get_hf_file_metadata(hf_hub_url(ref.source, "config.json"), timeout=HUB_PROBE_TIMEOUT)
            config_path = hf_hub_download(ref.source, "config.json", etag_timeout=10)
        except Exception as error:  # offline mode, no network, unknown repo, gated repo: all end here
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise ValueError(f"model {ref.name!r} ({ref.source}) is not in the local Hugging Face cache and "
                             f"cannot be fetched ({type(error).__name__}: {reason}); download it where the hub "
                             f"is reachable (huggingface-cli download {ref.source}) or pass a local directory") \
                from None
    family_of(ref.name, read_config(ref.name, Path(config_path).parent))


def model_family(ref: ModelRef) -> Family:
    """The family of a resolved model, from its config.json (a hub id's is in the local cache: checked at
    configure; read from there, without asking the hub again)."""
    if ref.is_local:
        return family_of(ref.name, read_config(ref.name, Path(ref.source)))
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(ref.source, "config.json")
    config_path = cached if isinstance(cached, str) else hf_hub_download(ref.source, "config.json")
    return family_of(ref.name, read_config(ref.name, Path(config_path).parent))


MISMATCHES_SHOWN = 3   # tensors named in a config/weights mismatch error; the rest are counted


def load_pretrained(ref: ModelRef, dtype: torch.dtype) -> PreTrainedModel:
    """The float model of ``ref`` (safetensors only). A config.json that does not build the weights'
    shapes (another checkpoint's config, an edited size) is a ValueError naming the directory, the
    first tensors with their two shapes and the fix: transformers refuses it with only "set
    ignore_mismatched_sizes", its table of tensors going to stderr, which pytest captures. Loading with
    ``ignore_mismatched_sizes`` lets its loading report say which tensors differ; any does and it raises."""
    from transformers import AutoModelForImageTextToText

    model, info = AutoModelForImageTextToText.from_pretrained(
        ref.source, dtype=dtype, use_safetensors=True, ignore_mismatched_sizes=True, output_loading_info=True)
    mismatched = sorted(info.get("mismatched_keys", ()))
    if mismatched:
        del model   # the error (kept by the session, with its frames) must not hold a whole model
        shown = "; ".join(f"{key}: weights {list(stored)}, config.json {list(built)}"
                          for key, stored, built in mismatched[:MISMATCHES_SHOWN])
        more = f" (and {len(mismatched) - MISMATCHES_SHOWN} more)" if len(mismatched) > MISMATCHES_SHOWN else ""
        where = f"{ref.source}/config.json" if ref.is_local else f"the config.json of {ref.source}"
        raise ValueError(f"model {ref.name!r}: {where} does not match its weights: {len(mismatched)} tensor(s) have "
                         f"another shape than the config builds ({shown}{more}); the config.json belongs to another "
                         "checkpoint or was edited: restore the one that came with these weights (re-download the "
                         "model)")
    return model


def describe_model(name: str) -> tuple[str, str, str, str]:
    """(source, architecture, download, whether it is available here) of an alias, local directory or hub id."""
    ref = resolve_model(name)
    if ref.is_local:
        architectures = json.loads((Path(ref.source) / "config.json").read_text()).get("architectures") or ["?"]
        return ref.source, ", ".join(architectures), "embedded" if name in EMBEDDED else "local", "yes (local)"
    from huggingface_hub import try_to_load_from_cache

    hub = next((model for model in HUB_MODELS.values() if model.hub_id == ref.source), None)
    cached = isinstance(try_to_load_from_cache(ref.source, "config.json"), str)
    return (ref.source, hub.architecture if hub else "? (read from the hub at load time)",
            hub.download if hub else "?",
            "yes (in the Hugging Face cache)" if cached else f"no: huggingface-cli download {ref.source}")
