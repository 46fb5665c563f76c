# The options every hazmon device module shares: which site of the inventory model it acts on.
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  inventory_root:
    description: The inventory folder (C(hazmon_inventory_root)); the model is loaded from it.
    type: path
    required: true
  enterprise:
    description: The enterprise's unified code (or slug).
    type: str
    required: true
"""
