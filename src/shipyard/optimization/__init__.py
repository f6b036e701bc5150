"""Model optimization: quantized, pruned and distilled versions, gated against their source.

See :mod:`shipyard.optimization.service` (the entry point behind ``shipyard optimize
--quantize/--prune/--distill``) and :mod:`shipyard.optimization.lineage` (what
``shipyard models show`` says about an optimized version).
"""
