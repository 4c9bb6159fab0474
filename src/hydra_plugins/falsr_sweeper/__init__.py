"""Hydra sweeper plugin for falsr's multi-objective architecture search (`hydra/sweeper=falsr`)."""
