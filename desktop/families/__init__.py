"""Stacks and near-duplicate groups in the app: cell models, pages, window hooks."""
