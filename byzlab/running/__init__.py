"""Running: driving runs to the end and keeping them: the driver, the results store, profiles, tables, the sweep.

The layers and their rule (each imports only from itself and the layers below) are in
``docs/architecture.md``; ``tests/test_layers.py`` holds every import to it.
"""
