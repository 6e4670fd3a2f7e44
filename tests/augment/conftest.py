import pathlib
import sys

# Lets the test modules `import kzoo_augment_helpers` (tests/ is not a package).
sys.path.insert(0, str(pathlib.Path(__file__).parent))
