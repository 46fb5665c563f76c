"""The inventory: one description of the province, checked against the notice's rules."""
