"""Builds pmc-adapter; the metadata is in setup.cfg.

Why this file: the contract files live at the top of the repository (``wsdl/``,
``xsd/``: the contract of record, where consumers and the checkout's tools look),
but an installed adapter must find them inside its package, as ``adapter/wsdl``
and ``adapter/xsd`` (``adapter/soap/contract.py`` looks there first, then at the
top of a checkout). setup.cfg finds the packages (``packages = find:``), so that
none can be forgotten, and ``find:`` cannot find a folder mapped from elsewhere
with ``package_dir``; nor can ``package_data`` name files outside a package. So
``build_py`` below copies ``wsdl/*.wsdl`` and ``xsd/*.xsd`` into the built
package, and MANIFEST.in puts both folders in the sdist, from which the wheel is
built. An editable install needs neither: the checkout has them at the top.
"""
import os
from glob import glob

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py
from setuptools.errors import FileError

# folder at the top of the repository -> (pattern, folder inside the package)
CONTRACT = {"wsdl": ("*.wsdl", "adapter/wsdl"), "xsd": ("*.xsd", "adapter/xsd")}


class build_py(_build_py):
    def contract_files(self) -> dict[str, str]:
        """Built file -> source file, for every contract file."""
        files = {}
        for folder, (pattern, target) in CONTRACT.items():
            for source in sorted(glob(os.path.join(folder, pattern))):
                files[os.path.join(self.build_lib, target, os.path.basename(source))] = source
        return files

    def build_package_data(self) -> None:
        super().build_package_data()
        files = self.contract_files()
        for folder, (pattern, _) in CONTRACT.items():
            if not any(source.startswith(folder + os.sep) for source in files.values()):
                raise FileError(f"no {folder}/{pattern} to put in the package "
                                "(an sdist without them? see MANIFEST.in)")
        for target, source in files.items():
            self.mkpath(os.path.dirname(target))
            self.copy_file(source, target)

    def get_output_mapping(self) -> dict[str, str]:
        return {**super().get_output_mapping(), **self.contract_files()}

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:  # already from get_output_mapping
            return outputs
        return outputs + list(self.contract_files())


setup(cmdclass={"build_py": build_py})
