# The cffi extension needs setup(cffi_modules=...), which pyproject.toml cannot express.
from setuptools import setup

setup(cffi_modules=["hpss_build.py:ffibuilder"])
