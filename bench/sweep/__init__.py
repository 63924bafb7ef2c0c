"""The parent side of a run: presets, the plan and its passes, the executors (local, Dask), the
worker processes, and the results CSV they write.
"""
