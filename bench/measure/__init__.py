"""The worker side: timing, memory, the derivative checks, each task inside a worker (eval, solve,
Newton), counting under callgrind, the machine's roofs, and `nablabench check`. No pandas, nothing
of the sweep or the analysis.
"""
