"""Configurations, the four models, the one door into the kernels, Auto registration, weight names and conversions."""
