"""nablabench: what automatic differentiation costs next to hand-derived derivatives."""
__version__ = "0.1.0"
