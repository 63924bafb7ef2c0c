"""What a reader sees: the HTML report, its plots, the problem catalogue.
"""
