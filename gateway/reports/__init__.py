"""Reconciliation reports: the catalogue of report ids and the streaming renderers."""
