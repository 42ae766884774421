import re
import subprocess
from pathlib import Path

from llm3d_core import __version__
from llm3d_core.assets import efficientnet_lite0_weights, minilm_dir, offline_model_files, smollm2_gguf

REPO = Path(__file__).resolve().parents[2]


def test_version_comes_from_package_xml(python_exe):
    xml_version = re.search(r"<version>(.+?)</version>", (REPO / "package.xml").read_text()).group(1)
    assert __version__ == xml_version
    out = subprocess.run([python_exe, "-m", "llm3d_cli.main", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"llm3d {xml_version}"


def test_offline_models_are_installed():
    files = offline_model_files()
    assert len(files) == 3
    assert (minilm_dir() / "config.json").is_file()
    assert efficientnet_lite0_weights().suffix == ".pth"
    # GGUF files start with the magic bytes "GGUF".
    assert smollm2_gguf().read_bytes()[:4] == b"GGUF"
    for path, size_mb in files.values():
        assert size_mb > 10, path
