"""The pure domain core: extraction, prompts, strategies, metrics, analysis, scaling,
allocation, bit matrices, profiles, oracles and sampling defaults.

Nothing here does I/O or imports the database, the broker or Docker (an import-linter
contract in ``pyproject.toml`` keeps it so); the services and the CLI wrap it in thin
async shells. See docs/ARCHITECTURE.md.
"""
