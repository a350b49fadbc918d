"""Readers of public dataset formats used by more than one paper."""
