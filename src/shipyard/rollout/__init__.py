"""Deployments: canary, A/B and shadow traffic, progressive rollout, automatic rollback.

Service functions live in :mod:`.service` (:class:`~.service.Deployments`),
routing in :mod:`.router`, the rollout policy in :mod:`.policy` and its
controller in :mod:`.controller`, A/B and shadow reports in :mod:`.reports`.
"""
