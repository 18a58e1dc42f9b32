"""Only the C extension lives here (the rest of the metadata is in pyproject.toml): the fast
replay engine's LOAD DATA row formatter, built from source with the machine's C compiler by
`pip install`. `standby.replay.bulk` falls back to its pure-Python reference when it is absent."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("standby.replay._ctsv", ["standby/replay/_ctsv.c"],
                             extra_compile_args=["-O2"])])
