"""TWIN (KDD 2023) and, in the same package, TWIN-V2 (CIKM 2024): lifelong user-behavior CTR models."""
