# The batch copy extension needs setup(cffi_modules=...), which pyproject.toml cannot express.
from setuptools import setup

setup(cffi_modules=["batchcopy_build.py:ffibuilder"])
