"""Only for the optional C masker; everything else about the package is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and rawws
unmasks in pure Python (``rawws.masking`` picks whichever is there).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[Extension("rawws.core._mask", ["rawws/core/_mask.c"], optional=True)]
)
