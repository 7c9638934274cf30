"""Triage: from an alert to targets, evidence, findings and recommendations."""
