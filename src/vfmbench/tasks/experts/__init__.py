"""Scripted experts that act on privileged state."""
