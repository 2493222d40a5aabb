"""Ships the CUDA sources of ``kernels/`` inside the wheel (as ``isograph_gpu/kernels``),
so the fused CuPy kernels are found after a plain ``pip install``; the metadata lives in
pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithKernels(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "isograph_gpu" / "kernels"
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(Path(__file__).resolve().parent.joinpath("kernels").glob("*.cu")):
            shutil.copy2(source, target / source.name)


setup(cmdclass={"build_py": BuildPyWithKernels})
