"""Runs read back: summaries with intervals, paired ratios, comparisons and gates, counts, findings,
history, floors.
"""
