"""The embedded tiny LLaVA models and the synthetic shapes world that trained them."""

from pathlib import Path

MODELS_DIR = Path(__file__).parent / "models"
