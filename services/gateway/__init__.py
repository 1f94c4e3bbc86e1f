"""The reward gateway: unit-test rewards for RL trainers and best-of-N over HTTP."""
