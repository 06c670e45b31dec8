"""Entry point of the single-file executable (PyInstaller runs this script)."""
import multiprocessing

from quantization_cmd.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # -j N spawns this executable as its worker processes
    main()
