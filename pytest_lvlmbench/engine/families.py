"""The image-text model families the suite runs, through transformers' own classes (no remote code).

A family is what the engine must know beyond ``AutoModelForImageTextToText``: the checkpoint
architecture it accepts, the processor class that builds its inputs, and which published evaluation
prompts apply to it (:mod:`..tasks.prompts`). Everything else (chat template, image processing,
image tokens) comes from the checkpoint itself.

Processors are loaded with ``AutoProcessor``. Where that fails because the processor wants a video
processor and torchvision is missing (Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision, InternVL and SmolVLM on
a CPU-only machine, whose torchvision wheel from the index is built against CUDA), the processor is
built from its parts instead: the checkpoint's image processor (transformers picks the PIL backend
without torchvision), tokenizer, chat template and processor settings, with no video processor. Image
inputs are identical; only video is unavailable, which no task uses.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Family:
    """One architecture the suite loads, and what it needs beyond the checkpoint."""

    name: str
    architecture: str   # config.json's ``architectures`` entry
    processor: str      # transformers processor class, for building it from parts
    prompts: str        # whose published task prompts apply (a key of tasks.prompts.STYLES)


FAMILIES = (
    Family("llava", "LlavaForConditionalGeneration", "LlavaProcessor", "llava"),
    Family("llava-next", "LlavaNextForConditionalGeneration", "LlavaNextProcessor", "llava"),
    Family("llava-onevision", "LlavaOnevisionForConditionalGeneration", "LlavaOnevisionProcessor", "lmms-eval"),
    Family("qwen2-vl", "Qwen2VLForConditionalGeneration", "Qwen2VLProcessor", "vlmevalkit-qwen2-vl"),
    Family("qwen2.5-vl", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor", "vlmevalkit"),
    Family("internvl", "InternVLForConditionalGeneration", "InternVLProcessor", "vlmevalkit-internvl"),
    Family("idefics3", "Idefics3ForConditionalGeneration", "Idefics3Processor", "vlmevalkit-idefics"),
    Family("smolvlm", "SmolVLMForConditionalGeneration", "SmolVLMProcessor", "vlmevalkit-idefics"),
    Family("gemma3", "Gemma3ForConditionalGeneration", "Gemma3Processor", "vlmevalkit"),
)
ARCHITECTURES = {family.architecture: family for family in FAMILIES}


def family_of(name: str, config: dict) -> Family:
    """The family of a checkpoint's config.json; another architecture is a ValueError naming the supported."""
    architectures = config.get("architectures") or []
    for architecture in architectures:
        if architecture in ARCHITECTURES:
            return ARCHITECTURES[architecture]
    raise ValueError(f"model {name!r} is {architectures or 'of unknown architecture'}, which the suite does not run: "
                     f"supported are {', '.join(f'{f.architecture} ({f.name})' for f in FAMILIES)}")


def read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def load_processor(source: str, family: Family):
    """The checkpoint's processor: ``AutoProcessor``, else (no torchvision for its video processor)
    :func:`processor_from_parts`. Left padding always: the batched generation and the quantized cache
    need it, and some tokenizers (Qwen2.5's) do not say."""
    from transformers import AutoProcessor
    from transformers.processing_utils import ProcessorMixin

    try:
        processor = AutoProcessor.from_pretrained(source)
    except (ImportError, AttributeError, TypeError, ValueError, OSError) as error:
        processor = processor_from_parts(source, family, error)
    else:
        if not isinstance(processor, ProcessorMixin):   # no processor config: AutoProcessor gave the tokenizer
            processor = processor_from_parts(source, family, None)
    processor.tokenizer.padding_side = "left"
    return complete_processor(processor, source)


def complete_processor(processor, source: str):
    """Fill what an older llava-hf snapshot's processor lacks from the model config: without
    ``processor_config.json`` its ``patch_size`` is None and it fails on the first image."""
    if getattr(processor, "patch_size", 0) is None:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(source)
        processor.patch_size = config.vision_config.patch_size
        processor.vision_feature_select_strategy = config.vision_feature_select_strategy
        if getattr(processor, "num_additional_image_tokens", None) in (None, 0):
            processor.num_additional_image_tokens = 1   # CLIP's class token, dropped by the "default" strategy
    return processor


def accepting_no_video(cls):
    """``cls`` accepting ``video_processor=None``: ProcessorMixin checks every attribute's class, and
    without torchvision the video processor base class is not importable to check against."""
    return type(cls.__name__, (cls,), {
        "check_argument_for_proper_class":
            lambda self, name, arg: None if arg is None else cls.check_argument_for_proper_class(self, name, arg)})


def processor_from_parts(source: str, family: Family, error: Exception | None):
    """The family's processor from the checkpoint's image processor, tokenizer, chat template and
    processor settings (processor_config.json), without a video processor. A failure names the
    original error too."""
    import transformers
    from transformers import AutoImageProcessor, AutoTokenizer

    try:
        cls = getattr(transformers, family.processor)
        directory = Path(source) if Path(source).is_dir() else _hub_directory(source)
        settings = read_json(directory / "processor_config.json")
        template = (directory / "chat_template.jinja").read_text() if (directory / "chat_template.jinja").is_file() \
            else read_json(directory / "chat_template.json").get("chat_template") or settings.get("chat_template")
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "image_processor", "tokenizer",
                                                                     "video_processor", "chat_template", "kwargs"}
        kwargs = {key: value for key, value in settings.items() if key in accepted}
        if "video_processor" in inspect.signature(cls.__init__).parameters:
            kwargs["video_processor"] = None
            cls = accepting_no_video(cls)
        return cls(image_processor=AutoImageProcessor.from_pretrained(source),
                   tokenizer=AutoTokenizer.from_pretrained(source), chat_template=template, **kwargs)
    except Exception as failure:
        first = f" (AutoProcessor failed first: {type(error).__name__}: {error})" if error is not None else ""
        raise ValueError(f"cannot build the {family.processor} of {source}: {type(failure).__name__}: {failure}"
                         f"{first}; install torchvision matching your torch, or check the checkpoint's processor "
                         "files (preprocessor_config.json, tokenizer, chat template)") from failure


def _hub_directory(source: str) -> Path:
    """The local snapshot directory of a hub checkpoint, its processor files fetched where not cached
    (AutoProcessor, which just ran, has fetched what the checkpoint has)."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    for name in ("processor_config.json", "chat_template.jinja", "chat_template.json"):
        if try_to_load_from_cache(source, name) is None:   # None: not known locally (a known absence is not None)
            try:
                hf_hub_download(source, name)
            except Exception:   # optional files: a checkpoint has some of them
                pass
    cached = try_to_load_from_cache(source, "preprocessor_config.json")
    return Path(cached if isinstance(cached, str) else hf_hub_download(source, "preprocessor_config.json")).parent


def render_prompt(processor, question: str, with_image: bool) -> str:
    """The question in the checkpoint's own chat template, image part first (as LLaVA's and most
    families' evaluations put it). Rendered by the tokenizer with the processor's template: SmolVLM's
    processor-side rendering reads its video processor's settings even for an image prompt."""
    parts = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": question}]
    return processor.tokenizer.apply_chat_template([{"role": "user", "content": parts}], tokenize=False,
                                                   chat_template=processor.chat_template, add_generation_prompt=True)
