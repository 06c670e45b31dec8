"""Entry point of the single-file executable (PyInstaller runs this script)."""
from quantization_cmd.cli import main

if __name__ == "__main__":
    main()
