"""Benchmarks of minicnn against PyTorch on CPU: ``python -m benchmarks --help``.

Nothing here is imported by ``minicnn`` or ``emotion``; PyTorch is optional and imported
lazily (``benchmarks.common.get_torch``). See README.md in this folder.
"""
