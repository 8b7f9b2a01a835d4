# The DSI module must be named libglobus_gridftp_server_transfercore.so exactly (the
# server's loader builds that name), so it is compiled by a build_py step rather than
# as a Python extension, whose file name setuptools decides.
import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class build_py_with_dsi(build_py):
    def run(self):
        super().run()
        import dsi_build

        if getattr(self, "editable_mode", False):
            # an editable install imports the package from the source tree
            target = os.path.join(os.path.dirname(os.path.abspath(__file__)), "transfercore_globus_dsi")
        else:
            target = os.path.join(self.build_lib, "transfercore_globus_dsi")
        dsi_build.build(target)


setup(cmdclass={"build_py": build_py_with_dsi})
