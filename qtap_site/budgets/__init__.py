"""Budgets on cost and tokens per user (and a default for everyone), per day and per month, checked before any
upstream request; and the usage pages (SPEC §5b).
"""
