"""The one evaluation path: models, prompts, generation, the generation cache, calibration,
judges. Nothing here imports pytest, the report or storage."""
