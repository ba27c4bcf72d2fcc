"""Shared helpers: errors, optional imports, configs, rendering preflight, seeding, paths."""
