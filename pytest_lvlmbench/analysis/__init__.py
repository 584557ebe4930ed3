"""Statistics over records: non-inferiority, interaction, subgroups, layer sensitivity,
invariance, proof of compression, published baselines, the frontier search."""
