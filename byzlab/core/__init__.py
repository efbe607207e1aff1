"""Core: Algorithm 1 and what it needs: the simulator, the rules and their registry, models, data, configuration.

The layers and their rule (each imports only from itself and the layers below) are in
``docs/architecture.md``; ``tests/test_layers.py`` holds every import to it.
"""
