"""The ftui engine: world, tasks, data, model, training and evaluation of one run directory.

Runs as `python -m engine ...`; knows nothing of ftui (see docs/run-directory.md for the contract).
"""

__version__ = "0.1.0"
