"""Flows: taint models, trace, exposure and cross-asset conversions over the transfers view."""
