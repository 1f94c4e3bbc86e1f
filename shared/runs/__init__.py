"""A run's life, written once for the services and the CLI: creating a run
(:mod:`~shared.runs.creation`, which ground truth labels it:
:mod:`~shared.runs.ground_truth`), the states it and its problems move through
(:mod:`~shared.runs.lifecycle`), the messages that drive it (:mod:`~shared.runs.fanout`)
and taking a failed run back up (:mod:`~shared.runs.resume`). See docs/ARCHITECTURE.md.
"""
