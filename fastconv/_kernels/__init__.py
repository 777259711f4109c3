"""Compiled leaf kernels of fastconv's CPU backend (Cython + C, OpenMP)."""
