"""Model configs shared by the tests (no downloads)."""


def llama_config(**overrides):
    from transformers import LlamaConfig

    settings = dict(vocab_size=128, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    return LlamaConfig(**{**settings, **overrides})
