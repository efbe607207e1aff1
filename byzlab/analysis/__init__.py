"""Analysis: reading results: the paper's figures and tables, the claims, the plots.

The layers and their rule (each imports only from itself and the layers below) are in
``docs/architecture.md``; ``tests/test_layers.py`` holds every import to it.
"""
