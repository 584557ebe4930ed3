import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything the tests load is built or shipped locally
# Without a GPU, Triton kernels run in Triton's interpreter (read when a kernel module is
# imported); quant/'s automatic dispatch keeps the torch path for CPU tensors either way.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from tiny_models import llama_config

pytest_plugins = ["pytester"]

COPY_VOCAB, COPY_PERIOD = 64, 16
TEST_TIMEOUT_S = 900   # a hung test fails after this long (pytest-timeout, the dev extra), instead of hanging CI


def pytest_collection_modifyitems(config, items):
    """Every test here gets pytest-timeout's limit, as a mark rather than pyproject's ``timeout`` key:
    that key warns "Unknown config option" (an error under --strict-config) wherever pytest-timeout is
    not installed, e.g. after README's first command."""
    if config.pluginmanager.hasplugin("timeout"):
        for item in items:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT_S), append=False)


@pytest.fixture(scope="session")
def copy_llama():
    """A tiny Llama trained (≈20 s, CPU) to repeat a 16-token pattern: its greedy outputs have
    real margins, unlike a random-init model whose argmax flips on float rounding noise.
    Returns (model, prompts) with prompts = the pattern written twice."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(vocab_size=COPY_VOCAB))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(160):
        batch = torch.randint(0, COPY_VOCAB, (16, COPY_PERIOD), generator=gen).repeat(1, 18)
        loss = model(batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    prompts = torch.randint(0, COPY_VOCAB, (4, COPY_PERIOD), generator=torch.Generator().manual_seed(1)).repeat(1, 2)
    return model, prompts


@pytest.fixture
def tiny_llava():
    """Build a random-init LLaVA-1.5 (CLIP tower 32 px, 4 image tokens) from config."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    def build(seed: int = 0):
        torch.manual_seed(seed)
        config = LlavaConfig(
            vision_config=CLIPVisionConfig(image_size=32, patch_size=16, hidden_size=64, intermediate_size=128,
                                           num_hidden_layers=1, num_attention_heads=2),
            text_config=LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=2),
            image_token_index=63, image_seq_length=4, vision_feature_layer=-1,
            vision_feature_select_strategy="default")
        return LlavaForConditionalGeneration(config).eval()

    return build
