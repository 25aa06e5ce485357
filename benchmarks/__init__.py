"""roupn's benchmarks: ``python -m benchmarks`` (or ``roupn bench``) runs them all.

``python -m benchmarks.diff`` runs the diff family alone with its own options.
"""
