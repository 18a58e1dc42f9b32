"""zmplayredo: replaying redo logs onto the standby's volumes (DESIGN.md §4)."""
