"""The embedded tiny LLaVA models and the synthetic shapes world that trained them."""


