"""The ten capabilities the suite measures, in the report's order."""

from __future__ import annotations



CAPABILITIES = ("recognition", "knowledge", "language_generation", "spatial", "visual_reasoning",
                "hallucination", "visual_illusion", "toxicity", "stereotypes", "bias")
