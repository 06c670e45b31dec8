import importlib


def test_packages_import():
    for name in ("tnnformat", "kernels", "quantization_cmd"):
        assert importlib.import_module(name).__doc__
