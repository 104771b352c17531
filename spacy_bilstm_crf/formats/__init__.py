"""Reading and writing annotation formats (CoNLL columns, BRAT standoff)."""
