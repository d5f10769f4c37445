import sys
from pathlib import Path

# rb_damage.py (the damage model shared by these tests) is imported as a plain module.
sys.path.insert(0, str(Path(__file__).parent))
